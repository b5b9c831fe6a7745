"""Chat domain: pure rules of a turn (no I/O)."""
