"""Pure rules: context fitting, templates, cursors, positive feedback, export lines, visibility."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from schleuse_chat.domain.assistants import chat_retention_days, seed_assistants, visible_to
from schleuse_chat.domain.context import default_title, fit_context, input_budget, message_tokens, split_current
from schleuse_chat.domain.datasets import is_positive, openai_line, qa_line
from schleuse_chat.domain.library import average, render, variables_of
from schleuse_chat.domain.pagination import InvalidCursor, decode_cursor, decode_offset, encode_cursor, encode_offset
from schleuse_common.contracts.providers import ChatMessage


def _m(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=text)  # type: ignore[arg-type]


def test_fit_context_drops_oldest_whole_turns_and_keeps_system_and_current() -> None:
    system = [_m("system", "S")]
    history = [_m("user", "a" * 90), _m("assistant", "b" * 90), _m("user", "c" * 90), _m("assistant", "d" * 90)]
    current = [_m("user", "jetzt")]
    budget = sum(message_tokens(m) for m in (*system, *history[2:], *current))
    kept = fit_context(system, history, current, budget)
    assert kept == [*system, *history[2:], *current]
    assert fit_context(system, history, current, 0) == [*system, *current]


def test_input_budget_keeps_room_for_the_answer() -> None:
    assert input_budget(8192, None) == 8192 - 1024
    assert input_budget(400, 1000) == 200  # never more than half the window kept back


def test_split_current_and_title() -> None:
    earlier, current = split_current([_m("user", "1"), _m("assistant", "2"), _m("user", "3")])
    assert [m.content for m in earlier] == ["1", "2"] and [m.content for m in current] == ["3"]
    assert default_title("kurz") == "kurz"
    assert default_title("wort " * 30).endswith("…") and len(default_title("wort " * 30)) <= 61


def test_templates_variables_and_rendering() -> None:
    template = "Schreib über {{thema}} für {{ zielgruppe }} und nochmal {{thema}}"
    assert variables_of(template) == ["thema", "zielgruppe"]
    text, missing = render(template, {"thema": "Datenschutz"})
    assert text == "Schreib über Datenschutz für {{ zielgruppe }} und nochmal Datenschutz"
    assert missing == ["zielgruppe"]
    assert average(7, 2) == 3.5 and average(0, 0) is None


def test_cursors_round_trip_and_reject_garbage() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "id-1")) == (at, "id-1")
    assert decode_offset(encode_offset(40)) == 40 and decode_offset(None) == 0
    for bad in ("kaputt", encode_offset(3)):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)
    with pytest.raises(InvalidCursor):
        decode_offset(encode_cursor(at, "x"))


def test_positive_feedback_and_export_lines() -> None:
    assert is_positive("up", None) and is_positive(None, 4)
    assert not is_positive("down", 5) and not is_positive(None, 3) and not is_positive(None, None)
    line = json.loads(openai_line("Sys", "Frage", "Antwort"))
    assert line == {
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": "Frage"},
            {"role": "assistant", "content": "Antwort"},
        ]
    }
    assert json.loads(qa_line("i", "F", "A")) == {"id": "i", "question": "F", "answer": "A"}


def test_visibility_and_seed_shape() -> None:
    assert visible_to([], True, None) and visible_to(["Recht"], True, "recht")
    assert not visible_to(["Recht"], True, "Kommunikation") and not visible_to([], False, "Recht")
    config = {
        "assistants": [{"name": "A", "model": "large", "department": "Recht", "system_prompt": "S"}],
        "retention": [{"purpose": "chat", "retention_days": 90}],
    }
    (seed,) = seed_assistants(config)
    assert (seed.name, seed.model, seed.departments(), seed.system_prompt) == ("A", "large", ["Recht"], "S")
    assert chat_retention_days(config) == 90 and chat_retention_days({}) is None
