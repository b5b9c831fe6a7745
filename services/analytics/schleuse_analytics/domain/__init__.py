"""Analytics domain: cost, tokens and budgets (no I/O)."""
