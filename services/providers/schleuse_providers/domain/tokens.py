"""Counting tokens when a provider reports none: a pluggable counter and a cheap fallback."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from schleuse_common.contracts.providers import ChatMessage

MESSAGE_OVERHEAD = 4  # role and separators per message, as in OpenAI's cookbook


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class CharEstimate:
    """About four characters a token: used when no tokenizer is available, always marked estimated."""

    def count(self, text: str) -> int:
        return (len(text) + 3) // 4


def count_messages(counter: TokenCounter, messages: Iterable[ChatMessage]) -> int:
    """Prompt tokens of a conversation, including per-message overhead and tool-call arguments."""
    total = 3
    for message in messages:
        total += MESSAGE_OVERHEAD + counter.count(message.content or "")
        for call in message.tool_calls or []:
            function = call.get("function") or {}
            total += counter.count(str(function.get("name", ""))) + counter.count(str(function.get("arguments", "")))
    return total
