"""What a turn sends and keeps: the messages that need a DLP scan and the text that is stored."""

from __future__ import annotations

from schleuse_common.contracts.providers import ChatMessage

SCANNED_ROLES = frozenset({"user", "assistant", "tool"})


def needs_scan(message: ChatMessage) -> bool:
    """Only content written by people or tools leaves through DLP; system prompts are the assistant's own."""
    return message.role in SCANNED_ROLES and bool(message.content)


def last_user_text(messages: list[ChatMessage]) -> str:
    """The newest user message: what this turn asked."""
    for message in reversed(messages):
        if message.role == "user" and message.content:
            return str(message.content)
    return ""
