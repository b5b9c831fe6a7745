"""Validation and normalisation of call events (pure)."""

from datetime import UTC, date, datetime

import pytest

from schleuse_ingest.domain.calls import Priority
from schleuse_ingest.domain.events import InvalidEvent, event_identity, normalise, parse_line


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "received_at": "2024-05-02T09:15:00+02:00",
        "caller_number": "030 12345678",
        "caller_name": "  Jürgen   Weiß ",
        "topic": "Rückfrage zur Rechnung",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_normalises_time_number_name_and_defaults() -> None:
    call = normalise(event(), default_source="file")
    assert call.received_at == datetime(2024, 5, 2, 7, 15, tzinfo=UTC)
    assert call.caller_number == "+493012345678"
    assert call.caller_name == "Jürgen Weiß"
    assert call.priority == Priority.NORMAL
    assert call.source == "file"
    assert call.event_id.startswith("sha256:")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T10:00:00", datetime(2024, 1, 15, 9, 0, tzinfo=UTC)),  # naive = Berlin, winter
        ("2024-07-15T10:00:00", datetime(2024, 7, 15, 8, 0, tzinfo=UTC)),  # naive = Berlin, summer
        ("2024-07-15T10:00:00Z", datetime(2024, 7, 15, 10, 0, tzinfo=UTC)),
        ("2024-07-15T10:00:00-05:00", datetime(2024, 7, 15, 15, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_become_utc(value: str, expected: datetime) -> None:
    assert normalise(event(received_at=value), default_source="f").received_at == expected


@pytest.mark.parametrize(
    ("typed", "e164"),
    [("0151 23456789", "+4915123456789"), ("+49 (0)89 1234567", "+49891234567"), ("0043 1 5123456", "+4315123456")],
)
def test_numbers_become_e164(typed: str, e164: str) -> None:
    assert normalise(event(caller_number=typed), default_source="f").caller_number == e164


@pytest.mark.parametrize(
    ("dob", "expected"),
    [("1984-03-07", date(1984, 3, 7)), ("07.03.1984", date(1984, 3, 7)), ("7.3.1984", date(1984, 3, 7))],
)
def test_birth_dates_in_both_formats(dob: str, expected: date) -> None:
    assert normalise(event(date_of_birth=dob), default_source="f").date_of_birth == expected


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"caller_number": None}, "missing_caller_number"),
        ({"received_at": None}, "missing_received_at"),
        ({"topic": "   "}, "missing_topic"),
        ({"caller_number": "12"}, "invalid_caller_number"),
        ({"caller_number": "anonym"}, "invalid_caller_number"),
        ({"received_at": "gestern"}, "invalid_received_at"),
        ({"date_of_birth": "31.02.1980"}, "invalid_date_of_birth"),
        ({"date_of_birth": "1980/01/01"}, "invalid_date_of_birth"),
        ({"date_of_birth": "2030-01-01"}, "implausible_date_of_birth"),
        ({"priority": "sofort"}, "invalid_priority"),
        ({"schema_version": 2}, "unsupported_schema_version"),
        ({"event_id": "sha256:abc"}, "invalid_event_id"),
        ({"caller_name": 42}, "invalid_caller_name"),
    ],
)
def test_invalid_events_have_a_reason(overrides: dict[str, object], reason: str) -> None:
    payload = event()
    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    with pytest.raises(InvalidEvent) as err:
        normalise(payload, default_source="f")
    assert err.value.reason == reason


def test_priority_words_and_numbers() -> None:
    assert normalise(event(priority="dringend"), default_source="f").priority == Priority.URGENT
    assert normalise(event(priority=3), default_source="f").priority == Priority.HIGH
    assert normalise(event(priority="LOW"), default_source="f").priority == Priority.LOW


def test_event_id_given_is_kept_and_unknown_fields_stay_in_payload() -> None:
    call = normalise(event(event_id="pbx-1-42", extension="204"), default_source="f")
    assert call.event_id == "pbx-1-42"
    assert call.payload["extension"] == "204"


def test_hash_identity_is_stable_and_covers_the_payload() -> None:
    a = normalise(event(), default_source="f")
    b = normalise(event(), default_source="f")
    c = normalise(event(topic="Anderes Anliegen"), default_source="f")
    assert a.event_id == b.event_id != c.event_id
    same_moment = normalise(event(received_at="2024-05-02T07:15:00Z"), default_source="f")
    assert same_moment.received_at == a.received_at
    assert event_identity(a.received_at, a.caller_number, a.payload) == a.event_id


def test_content_hash_changes_with_content_only() -> None:
    a = normalise(event(event_id="x"), default_source="f")
    assert a.content_hash() == normalise(event(event_id="x"), default_source="f").content_hash()
    assert a.content_hash() != normalise(event(event_id="x", priority="hoch"), default_source="f").content_hash()


def test_parse_line_rejects_non_objects() -> None:
    with pytest.raises(InvalidEvent, match="malformed_json"):
        parse_line(b'{"received_at": ')
    with pytest.raises(InvalidEvent, match="not_an_object"):
        parse_line(b"[1, 2]")
    assert parse_line(b'{"a": 1}') == {"a": 1}


def test_control_characters_and_unicode_are_normalised() -> None:
    call = normalise(event(topic="Ru\u0308ckruf\x00 bitte\n\tdringend"), default_source="f")
    assert call.topic == "Rückruf bitte dringend"


def test_search_key_folds_case_and_umlauts() -> None:
    from schleuse_ingest.domain.events import search_key

    assert search_key("Jürgen MÜLLER-Weiß") == "juergen mueller-weiss"
    assert search_key("Ärztin Öztürk") == "aerztin oeztuerk"


def test_published_json_schema_matches_the_contract() -> None:
    import json
    from pathlib import Path

    from schleuse_common.contracts.calls import CallEvent

    doc = json.loads((Path(__file__).resolve().parents[3] / "docs" / "calls-event.schema.json").read_text())
    assert doc["properties"] == CallEvent.model_json_schema()["properties"]
    assert set(doc["required"]) == {"received_at", "caller_number", "topic"}
