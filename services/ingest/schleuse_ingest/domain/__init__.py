"""The ingest domain: call events, calls, access, tailing, retention and queries. No I/O."""
