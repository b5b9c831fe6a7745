"""Governance domain: the audit chain, retention and data-subject rules (no I/O)."""
