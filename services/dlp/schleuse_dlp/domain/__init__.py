"""Pure DLP logic: detectors, policies, redaction and restore. No I/O besides reading shipped data files."""
