"""The DLP use cases without I/O: scan a text for a thread under a policy, restore an answer."""

from dataclasses import dataclass

from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.policy import Policy
from schleuse_dlp.domain.redaction import Redaction, ThreadMapping, redact


@dataclass
class ScanOutcome:
    language: str
    redaction: Redaction


def scan(text: str, *, analyzer: Analyzer, policy: Policy, mapping: ThreadMapping, hash_key: bytes) -> ScanOutcome:
    """Detect and redact one text; new placeholders are added to `mapping` and listed for persisting."""
    analysis = analyzer.analyze(text)
    return ScanOutcome(analysis.language, redact(text, analysis.spans, policy, mapping, hash_key))
