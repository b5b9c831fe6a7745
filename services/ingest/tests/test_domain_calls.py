"""Status changes, assignment, masking, retention and query rules (pure)."""

from datetime import UTC, datetime, timedelta

import pytest

from schleuse_ingest.domain.access import AccessPolicy, mask_birth_date, mask_number
from schleuse_ingest.domain.calls import CallState, InvalidRequest, StaleVersion, Status, assign, change_status
from schleuse_ingest.domain.query import Quick, Sort, decode_cursor, encode_cursor, number_prefix, resolve, split_query
from schleuse_ingest.domain.retention import OTHER_TOPIC, RetentionPolicy, topic_group

NEW = CallState(1, Status.NEW, None, 3)


def test_status_change_needs_the_current_version() -> None:
    change = change_status(NEW, Status.IN_PROGRESS, 3)
    assert change.state.status == Status.IN_PROGRESS and change.state.version == 4
    assert change.diff == {"status": {"from": "NEW", "to": "IN_PROGRESS"}}
    with pytest.raises(StaleVersion) as err:
        change_status(NEW, Status.DONE, 2)
    assert err.value.current_version == 3


def test_done_is_idempotent_even_with_an_old_version() -> None:
    done = change_status(NEW, Status.DONE, 3).state
    again = change_status(done, Status.DONE, 3)
    assert not again.changed and again.state == done


def test_reopening_a_done_call_is_versioned() -> None:
    done = CallState(1, Status.DONE, None, 5)
    with pytest.raises(StaleVersion):
        change_status(done, Status.IN_PROGRESS, 4)
    assert change_status(done, Status.IN_PROGRESS, 5).state.status == Status.IN_PROGRESS


def test_assign_starts_work_and_unassign() -> None:
    change = assign(NEW, "u-1", None)
    assert change.state.assignee == "u-1" and change.state.status == Status.IN_PROGRESS
    assert set(change.diff) == {"assignee", "status"}
    assert not assign(change.state, "u-1", 1).changed  # same assignee: no-op whatever the version
    assert assign(change.state, None, change.state.version).state.assignee is None
    with pytest.raises(InvalidRequest):
        assign(NEW, "   ", None)


def test_masking() -> None:
    assert mask_number("+4915123456789") == "+49151******89"
    assert mask_birth_date(None) is None
    policy = AccessPolicy()
    assert policy.sees_pii(["agent"]) and not policy.sees_pii(["dpo"])
    assert policy.can_read(["dpo"]) and not policy.can_read(["user"])
    assert policy.can_administer(["admin"]) and not policy.can_administer(["agent"])


def test_retention_cutoff_and_files() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    policy = RetentionPolicy(30)
    assert policy.cutoff(now) == now - timedelta(days=30)
    assert policy.file_expired("calls-2024-04-30.jsonl", now)
    assert not policy.file_expired("calls-2024-05-02.jsonl", now)
    assert not policy.file_expired("notes.txt", now)
    with pytest.raises(ValueError):
        RetentionPolicy(0)


def test_topic_aggregates_keep_no_rare_topic() -> None:
    assert topic_group({"Rezept": 7, "Herr Maier ruft wegen Befund an": 1, "Termin": 2}) == {
        "Rezept": 7,
        OTHER_TOPIC: 3,
    }


def test_quick_filters_and_retention_floor() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    cutoff = now - timedelta(days=30)
    f = resolve(cutoff=cutoff, now=now, actor_id="me", since=now - timedelta(days=90))
    assert f.since == cutoff  # never older than the policy
    f = resolve(cutoff=cutoff, now=now, actor_id="me", quick=[Quick.LAST_HOUR, Quick.OPEN, Quick.MINE])
    assert f.since == now - timedelta(hours=1)
    assert f.statuses == (Status.NEW, Status.IN_PROGRESS) and f.assignee == "me"
    f = resolve(cutoff=cutoff, now=now, actor_id="me", quick=[Quick.TODAY])
    assert f.since == datetime(2024, 5, 31, 22, tzinfo=UTC)  # midnight in Berlin


def test_query_splits_numbers_from_words() -> None:
    assert split_query("0151 234") == ("+49151234", None)
    assert split_query("+49 30") == ("+4930", None)
    assert split_query("Rezept Müller") == (None, "Rezept Müller")
    assert number_prefix("0049 89") == "+4989"


def test_cursor_roundtrip_and_sort_binding() -> None:
    token = encode_cursor(Sort.NEWEST, (datetime(2024, 1, 1, tzinfo=UTC), 42))
    assert decode_cursor(token, Sort.NEWEST) == ["2024-01-01T00:00:00+00:00", 42]
    with pytest.raises(InvalidRequest):
        decode_cursor(token, Sort.PRIORITY)
    with pytest.raises(InvalidRequest):
        decode_cursor("!!!", Sort.NEWEST)


def test_search_terms_are_word_prefixes_only() -> None:
    from schleuse_ingest.domain.query import search_terms

    assert search_terms("termin haus") == ["termin:*", "haus:*"]
    assert search_terms("a' | !b & (c)") == ["a", "b", "c"]  # operators never pass; short words match whole
    assert search_terms("b.sc. mueller-weiss") == ["b", "sc", "mueller:*", "weiss:*"]
    assert search_terms("  ") == []
    assert len(search_terms(" ".join(["wort"] * 20))) == 8
