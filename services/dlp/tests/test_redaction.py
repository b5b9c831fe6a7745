"""Placeholders, masks, hashes, policies and restore (also of streamed answers)."""

import pytest

from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.policy import Policy, PolicyBook
from schleuse_dlp.domain.redaction import ThreadMapping, mask, redact
from schleuse_dlp.domain.restore import PlaceholderStreamBuffer, StreamRestorer, restore
from schleuse_dlp.domain.service import scan
from schleuse_dlp.domain.spans import EMAIL, IBAN, PERSON, PHONE, Span

KEY = b"k" * 32


def spans_of(text: str, *pairs: tuple[str, str]) -> list[Span]:
    out = []
    for value, typ in pairs:
        start = text.index(value)
        out.append(Span(start, start + len(value), typ))
    return out


def test_same_value_gets_the_same_placeholder_within_a_thread() -> None:
    mapping = ThreadMapping()
    text = "Anna Schmidt schrieb an anna@example.de; Anna Schmidt wartet."
    spans = spans_of(text, ("Anna Schmidt", PERSON), ("anna@example.de", EMAIL))
    spans.append(Span(text.rindex("Anna Schmidt"), text.rindex("Anna Schmidt") + 12, PERSON))
    r = redact(text, spans, Policy(), mapping, KEY)
    assert r.text == "[PERSON_1] schrieb an [EMAIL_1]; [PERSON_1] wartet."
    again = redact(
        "Grüße an Anna  Schmidt", spans_of("Grüße an Anna  Schmidt", ("Anna  Schmidt", PERSON)), Policy(), mapping, KEY
    )
    assert again.text == "Grüße an [PERSON_1]"
    assert again.new_placeholders == {}
    other = redact("Jonas Becker", [Span(0, 12, PERSON)], Policy(), mapping, KEY)
    assert other.text == "[PERSON_2]"
    assert other.new_placeholders == {"[PERSON_2]": (PERSON, "Jonas Becker")}


def test_phone_numbers_in_different_formats_share_a_placeholder() -> None:
    mapping = ThreadMapping()
    a = redact("0171 2345678", [Span(0, 12, PHONE)], Policy(), mapping, KEY)
    b = redact("+49 171 2345678", [Span(0, 15, PHONE)], Policy(), mapping, KEY)
    assert a.text == b.text == "[PHONE_1]"


def test_mapping_rebuilt_from_entries_continues_numbering() -> None:
    mapping = ThreadMapping.from_entries({"[PERSON_1]": (PERSON, "Anna"), "[PERSON_2]": (PERSON, "Bert")})
    assert mapping.placeholder_for(PERSON, "Anna") == ("[PERSON_1]", False)
    assert mapping.placeholder_for(PERSON, "Clara") == ("[PERSON_3]", True)


@pytest.mark.parametrize(
    ("typ", "value", "masked"),
    [
        (PHONE, "+49 171 2345689", "+49 *** *** 89"),
        (PHONE, "0171 2345689", "+49 *** *** 89"),
        (EMAIL, "max.muster@example.de", "m***@example.de"),
        (IBAN, "DE89 3704 0044 0532 0130 00", "DE89 **** **** **** **30 00"),
        (PERSON, "Anna Schmidt", "A. S."),
    ],
)
def test_mask_format(typ: str, value: str, masked: str) -> None:
    assert mask(typ, value) == masked


def test_policy_actions() -> None:
    text = "Anna ruft 0171 2345689 an, Mail anna@example.de, IBAN DE89370400440532013000"
    spans = spans_of(
        text, ("Anna", PERSON), ("0171 2345689", PHONE), ("anna@example.de", EMAIL), ("DE89370400440532013000", IBAN)
    )
    policy = Policy(actions={PERSON: "allow", PHONE: "mask", EMAIL: "hash"})
    r = redact(text, spans, policy, ThreadMapping(), KEY)
    assert r.text.startswith("Anna ruft +49 *** *** 89 an, Mail [EMAIL_#")
    assert r.text.endswith("IBAN [IBAN_1]")
    assert "anna@example.de" not in r.text
    assert sorted(r.summary()) == [
        ("EMAIL", 1, "hash"),
        ("IBAN", 1, "redact"),
        ("PERSON", 1, "allow"),
        ("PHONE", 1, "mask"),
    ]
    hashed = redact("anna@example.de", [Span(0, 15, EMAIL)], policy, ThreadMapping(), KEY).text
    assert hashed in r.text  # keyed hash: stable across threads, not reversible


def test_block_refuses_the_text_and_keeps_the_mapping_untouched() -> None:
    mapping = ThreadMapping()
    text = "Anna, der Schlüssel ist sk-abcdefghijklmnopqrstuvwxyz"
    spans = [Span(0, 4, PERSON), Span(24, len(text), "SECRET")]
    r = redact(text, spans, Policy(), mapping, KEY)
    assert r.blocked and r.text == "" and r.new_placeholders == {}
    assert mapping.originals == {}
    assert ("SECRET", 1, "block") in r.summary()


def test_allow_list_terms_are_not_findings() -> None:
    text = "Frau Müller von der Stadtwerke Musterstadt GmbH"
    spans = spans_of(text, ("Müller", PERSON), ("Stadtwerke Musterstadt GmbH", "ORG"))
    r = redact(text, spans, Policy(allow_terms=["stadtwerke musterstadt gmbh"]), ThreadMapping(), KEY)
    assert r.text == "Frau [PERSON_1] von der Stadtwerke Musterstadt GmbH"
    assert r.summary() == [("PERSON", 1, "redact")]


def test_policy_book_prefers_assistant_then_department_then_default() -> None:
    book = PolicyBook(
        [
            Policy(scope="department", scope_id="hr", default_action="mask"),
            Policy(scope="assistant", scope_id="a1", default_action="allow"),
        ]
    )
    assert book.resolve(assistant_id="a1", department="hr").default_action == "allow"
    assert book.resolve(assistant_id="a2", department="hr").default_action == "mask"
    assert book.resolve(assistant_id=None, department="it").default_action == "redact"


def test_restore_puts_originals_back_and_leaves_unknown_placeholders() -> None:
    mapping = ThreadMapping()
    mapping.placeholder_for(PERSON, "Anna Schmidt")
    assert restore("Hallo [PERSON_1], wer ist [PERSON_9]?", mapping) == "Hallo Anna Schmidt, wer ist [PERSON_9]?"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_stream_restore_across_any_chunk_split(size: int) -> None:
    mapping = ThreadMapping()
    mapping.placeholder_for(PERSON, "Anna Schmidt")
    mapping.placeholder_for(IBAN, "DE89370400440532013000")
    answer = "Liebe [PERSON_1], die IBAN [IBAN_1] ist notiert. [Hinweis] Array[0] und [PERSON_1]"
    restorer = StreamRestorer(mapping)
    out = "".join(restorer.feed(answer[i : i + size]) for i in range(0, len(answer), size)) + restorer.finish()
    assert out == restore(answer, mapping)
    assert "Anna Schmidt" in out and "DE89370400440532013000" in out and "[Hinweis]" in out


def test_stream_buffer_holds_back_only_possible_placeholders() -> None:
    buf = PlaceholderStreamBuffer()
    assert buf.push("Hallo [PERS") == "Hallo "
    assert buf.push("ON_1] und [x") == "[PERSON_1] und [x"
    assert buf.push(" [") == " "
    assert buf.flush() == "["


def test_scan_end_to_end_in_memory(analyzer: Analyzer) -> None:
    mapping = ThreadMapping()
    text = "Hallo, mein Name ist Jonas Becker, IBAN DE89 3704 0044 0532 0130 00, Tel. 0171 2345678."
    out = scan(text, analyzer=analyzer, policy=Policy(), mapping=mapping, hash_key=KEY)
    red = out.redaction.text
    assert "Jonas" not in red and "DE89" not in red and "2345678" not in red
    assert "[PERSON_1]" in red and "[IBAN_1]" in red and "[PHONE_1]" in red
    assert restore(red, mapping) == text
    assert out.language == "de"
