"""How much of a thread fits the model: the system prompt always, then the newest turns, oldest dropped first."""

from __future__ import annotations

from collections.abc import Sequence

from schleuse_common.contracts.providers import ChatMessage

MESSAGE_OVERHEAD_TOKENS = 4
ANSWER_RESERVE_TOKENS = 1024


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer (German runs near 3 characters a token)."""
    return len(text) // 3 + 1


def message_tokens(message: ChatMessage) -> int:
    """Estimated tokens of one message including its framing."""
    return estimate_tokens(message.content or "") + MESSAGE_OVERHEAD_TOKENS


def input_budget(context_window: int, max_tokens: int | None) -> int:
    """Tokens left for the input once the answer has room (at most half the window is kept back)."""
    reserve = min(max_tokens or ANSWER_RESERVE_TOKENS, context_window // 2)
    return max(0, context_window - reserve)


def fit_context(
    system: Sequence[ChatMessage],
    history: Sequence[ChatMessage],
    current: Sequence[ChatMessage],
    budget: int,
) -> list[ChatMessage]:
    """System messages and the current turn always go; history is kept newest-first while it fits.

    History is dropped in whole pairs from the oldest end so an answer never loses its question.
    """
    used = sum(message_tokens(m) for m in (*system, *current))
    kept: list[ChatMessage] = []
    for turn in reversed(_turns(history)):
        cost = sum(message_tokens(m) for m in turn)
        if used + cost > budget:
            break
        kept[:0] = turn
        used += cost
    return [*system, *kept, *current]


def _turns(history: Sequence[ChatMessage]) -> list[list[ChatMessage]]:
    """Group history into turns, each starting at a user message."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def with_system_prompt(
    system_prompt: str, messages: Sequence[ChatMessage]
) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """Split the caller's messages into (system, rest), the assistant's system prompt first."""
    system = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    system += [m for m in messages if m.role == "system"]
    return system, [m for m in messages if m.role != "system"]


def split_current(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """(earlier messages, the current turn) where the current turn starts at the last user message."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return list(messages[:i]), list(messages[i:])
    return [], list(messages)


def default_title(prompt: str, limit: int = 60) -> str:
    """A thread's first title: the start of its first prompt, cut at a word."""
    text = " ".join(prompt.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut + "…"
