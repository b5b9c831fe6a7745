"""Redaction: replace findings by stable per-thread placeholders, masks or hashes, or block the text."""

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field

import phonenumbers

from schleuse_common.contracts.dlp import PLACEHOLDER
from schleuse_dlp.domain import spans as t
from schleuse_dlp.domain.policy import Action, Policy
from schleuse_dlp.domain.spans import Span


def normalize_value(entity_type: str, value: str) -> str:
    """The identity of a value for "same value -> same placeholder" (spacing and case do not matter)."""
    if entity_type in (t.IBAN, t.CREDIT_CARD, t.TAX_ID, t.SOCIAL_SECURITY, t.HEALTH_INSURANCE, t.BIC):
        return re.sub(r"[\s-]", "", value).upper()
    if entity_type == t.PHONE:
        try:
            return phonenumbers.format_number(phonenumbers.parse(value, "DE"), phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return re.sub(r"\D", "", value)
    return " ".join(value.split()).casefold()


@dataclass
class ThreadMapping:
    """Placeholders of one thread: placeholder -> original, and (type, normalized value) -> placeholder."""

    originals: dict[str, str] = field(default_factory=dict)
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_entries(cls, entries: dict[str, tuple[str, str]]) -> "ThreadMapping":
        """Rebuild from stored entries: placeholder -> (entity_type, original)."""
        mapping = cls()
        for placeholder, (entity_type, original) in entries.items():
            mapping._add(placeholder, entity_type, original)
        return mapping

    def _add(self, placeholder: str, entity_type: str, original: str) -> None:
        self.originals[placeholder] = original
        self.by_value[(entity_type, normalize_value(entity_type, original))] = placeholder
        m = PLACEHOLDER.fullmatch(placeholder)
        if m:
            self.counters[m.group(1)] = max(self.counters[m.group(1)], int(m.group(2)))

    def placeholder_for(self, entity_type: str, original: str) -> tuple[str, bool]:
        """The placeholder of a value, creating the next free one; returns (placeholder, created)."""
        key = (entity_type, normalize_value(entity_type, original))
        existing = self.by_value.get(key)
        if existing is not None:
            return existing, False
        placeholder = f"[{entity_type}_{self.counters[entity_type] + 1}]"
        self._add(placeholder, entity_type, original)
        return placeholder, True

    def entry(self, placeholder: str) -> tuple[str, str] | None:
        """(entity_type, original) of a placeholder, if known."""
        original = self.originals.get(placeholder)
        m = PLACEHOLDER.fullmatch(placeholder)
        if original is None or m is None:
            return None
        return m.group(1), original


@dataclass(frozen=True)
class Finding:
    """One acted-on span (kept in memory only; summaries leave the service, values never)."""

    span: Span
    action: Action


@dataclass
class Redaction:
    """The outcome of redacting one text."""

    text: str
    blocked: bool
    findings: list[Finding]
    new_placeholders: dict[str, tuple[str, str]]  # placeholder -> (entity_type, original), to persist

    def summary(self) -> list[tuple[str, int, Action]]:
        """(entity_type, count, action) per type and action, values never included."""
        counts = Counter((f.span.entity_type, f.action) for f in self.findings)
        return [(etype, n, action) for (etype, action), n in sorted(counts.items())]


def mask(entity_type: str, value: str) -> str:
    """Partial display: keep a little structure, hide the rest (`+49 *** *** 89`)."""
    if entity_type == t.PHONE:
        digits = re.sub(r"\D", "", value)
        try:
            cc = f"+{phonenumbers.parse(value, 'DE').country_code}"
        except phonenumbers.NumberParseException:
            cc = ""
        return f"{cc} *** *** {digits[-2:]}".strip()
    if entity_type == t.EMAIL:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if entity_type in (t.PERSON, t.LOCATION, t.ORG):
        return " ".join(f"{w[:1]}." for w in value.split())
    if entity_type in (t.IBAN, t.CREDIT_CARD):
        return _mask_chars(value, keep_start=4 if entity_type == t.IBAN else 0, keep_end=4)
    return _mask_chars(value, keep_start=0, keep_end=2)


def _mask_chars(value: str, keep_start: int, keep_end: int) -> str:
    positions = [i for i, c in enumerate(value) if c.isalnum()]
    keep = set(positions[:keep_start]) | set(positions[len(positions) - keep_end :])
    return "".join(c if (i in keep or not c.isalnum()) else "*" for i, c in enumerate(value))


def hash_token(entity_type: str, value: str, key: bytes) -> str:
    """A keyed, non-reversible token: same value -> same token across threads (for linkage, not for restore)."""
    digest = hmac.new(key, normalize_value(entity_type, value).encode(), hashlib.sha256).hexdigest()[:12]
    return f"[{entity_type}_#{digest}]"


def allowed_ranges(text: str, allow_terms: list[str]) -> list[tuple[int, int]]:
    """Where allow-listed terms occur in the text (case-insensitive, whole words)."""
    ranges: list[tuple[int, int]] = []
    for term in allow_terms:
        if term.strip():
            pattern = rf"(?<!\w){re.escape(term.strip())}(?!\w)"
            ranges += [(m.start(), m.end()) for m in re.finditer(pattern, text, re.IGNORECASE)]
    return ranges


def redact(text: str, spans: list[Span], policy: Policy, mapping: ThreadMapping, hash_key: bytes) -> Redaction:
    """Apply the policy's action to every span; placeholders are taken from (and added to) the mapping."""
    allowed = allowed_ranges(text, policy.allow_terms)
    findings = [
        Finding(span, policy.action_for(span.entity_type))
        for span in sorted(spans, key=lambda s: s.start)
        if policy.covers(span.entity_type, span.score)
        and not any(a <= span.start and span.end <= b for a, b in allowed)
    ]
    if any(f.action == "block" for f in findings):
        # nothing leaves the house, and the mapping is not touched for a refused text
        return Redaction("", True, findings, {})
    new: dict[str, tuple[str, str]] = {}
    pieces: list[str] = []
    cursor = 0
    for finding in findings:
        span, action = finding.span, finding.action
        value = text[span.start : span.end]
        if action == "allow":
            continue
        if action == "mask":
            replacement = mask(span.entity_type, value)
        elif action == "hash":
            replacement = hash_token(span.entity_type, value, hash_key)
        else:
            replacement, created = mapping.placeholder_for(span.entity_type, value)
            if created:
                new[replacement] = (span.entity_type, value)
        pieces += [text[cursor : span.start], replacement]
        cursor = span.end
    pieces.append(text[cursor:])
    return Redaction("".join(pieces), False, findings, new)
