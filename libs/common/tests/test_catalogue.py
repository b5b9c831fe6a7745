"""The subject catalogue covers every contract subject and the committed docs are what it generates."""

from __future__ import annotations

import re

import yaml

from schleuse_common import catalogue
from schleuse_common.bus import STREAMS


def test_every_subject_constant_in_the_contracts_is_catalogued() -> None:
    discovered = catalogue.discovered_subjects()
    assert "dlp.scan" in discovered  # discovery itself works
    assert catalogue.uncatalogued() == {}, "add an Entry to schleuse_common/catalogue.py for these"


def test_committed_docs_equal_the_generated_output() -> None:
    for path, text in catalogue.generated().items():
        assert path.is_file(), f"{path} missing: run python -m schleuse_common.catalogue"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run python -m schleuse_common.catalogue"
        )


def test_facts_land_in_a_stream_and_requests_do_not() -> None:
    for s in catalogue.catalogue():
        if s.kind == "fact":
            assert s.stream is not None, f"{s.subject} is a fact but no stream captures it"
        else:
            assert catalogue.stream_of(s.subject) is None, f"request subject {s.subject} is captured by a stream"
            assert s.reply is not None


def test_stream_matching_follows_nats_wildcards() -> None:
    assert catalogue.stream_of("usage.recorded") == "USAGE"
    assert catalogue.stream_of("calls.events.pbx1") == "CALLS"
    assert catalogue.stream_of("chat.turn") is None  # `chat.turn.>` needs one more token
    assert catalogue.stream_of("audit") is None
    assert catalogue._captures("a.*.c", "a.b.c") and not catalogue._captures("a.*.c", "a.b.c.d")


def test_asyncapi_document_is_3_0_and_every_ref_resolves() -> None:
    text = catalogue.generated()[catalogue.ASYNCAPI_YAML]
    doc = yaml.safe_load(text)
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {s.subject for s in catalogue.catalogue()} <= addresses
    for ref in set(re.findall(r"\$ref: '?(#/[^'\s]+)", text)):
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, f"dangling {ref}"
            node = node[part]


def test_markdown_documents_envelope_streams_and_publishing() -> None:
    text = catalogue.generated()[catalogue.SUBJECTS_MD]
    for field in ("id", "type", "version", "occurred_at", "trace_id", "actor", "data"):
        assert f"| `{field}` |" in text
    assert "Nats-Msg-Id" in text and "calls.events.<source>" in text
    for spec in STREAMS:
        assert f"| `{spec.name}` |" in text
    for s in catalogue.catalogue():
        assert f"| `{s.subject}` |" in text
        assert f"### {catalogue.model_name(s.payload)}\n" in text
