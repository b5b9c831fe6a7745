"""Credentials: API keys of well-known formats, tokens and passwords in URLs, private keys, password cues."""

import re
from collections.abc import Iterator

from schleuse_dlp.domain.spans import SECRET, Span
from schleuse_dlp.domain.tokens import fold_ascii_case

_KEY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])",  # AWS access key id
        r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])",  # GitHub tokens
        r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}",  # GitHub fine-grained PAT
        r"(?<![A-Za-z0-9_])glpat-[A-Za-z0-9_-]{20,}",  # GitLab PAT
        r"(?<![A-Za-z0-9_-])sk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{20,}",  # OpenAI / Anthropic keys
        r"(?<![A-Za-z0-9_])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
        r"(?<![A-Za-z0-9_])xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
        r"(?<![A-Za-z0-9_])AIza[0-9A-Za-z_-]{35}",  # Google API key
        r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}",  # Hugging Face
        r"(?<![A-Za-z0-9_])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",  # SendGrid
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
    )
)
# For each key pattern, literals of which every match contains one (case-sensitive): a cheap test
# that lets the scan be skipped for the many texts without any of them.
_KEY_TRIGGERS: tuple[tuple[str, ...], ...] = (
    ("AKIA", "ASIA"),
    ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ("github_pat_",),
    ("glpat-",),
    ("sk-",),
    ("_live_", "_test_"),
    ("xox",),
    ("AIza",),
    ("hf_",),
    ("SG.",),
    ("eyJ",),
    ("-----BEGIN ",),
)
# user:password@ in a URL: only the credentials are secret, the host may stay readable
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/:@]+:[^\s/@]+(?=@)")
_URL_TOKEN = re.compile(
    r"[?&](?:access_token|refresh_token|id_token|token|api_key|apikey|api-key|key|secret|client_secret|"
    r"password|passwd|pwd|sig|signature|auth|session|sessionid|x-amz-signature|code)=([^&#\s]{6,})",
    re.IGNORECASE,
)
# "Passwort: hunter2", "password=...", "Kennwort lautet xyz"
_PASSWORD_CUE = re.compile(
    r"(?:passwort|kennwort|password|passwd|pwd|pin|api[-_ ]?key|secret|token)"
    r"(?:\s+(?:ist|lautet|is))?\s*[:=]?\s*[\"'„]?([^\s\"'“]{4,})",
    re.IGNORECASE,
)
# every _PASSWORD_CUE match contains one of these (after fold_ascii_case)
_PASSWORD_TRIGGERS = ("passw", "kennwort", "pwd", "pin", "api", "secret", "token")


def find_secrets(text: str) -> Iterator[Span]:
    """Known API-key formats, URL credentials and tokens, private keys and values after a password cue."""
    for pattern, triggers in zip(_KEY_PATTERNS, _KEY_TRIGGERS, strict=True):
        if not any(t in text for t in triggers):
            continue
        for m in pattern.finditer(text):
            yield Span(m.start(), m.end(), SECRET, 1.0, "secret-format")
    if "://" in text:
        for m in _URL_CREDENTIALS.finditer(text):
            yield Span(m.start(), m.end(), SECRET, 1.0, "url-credentials")
    if "=" in text:
        for m in _URL_TOKEN.finditer(text):
            yield Span(m.start(1), m.end(1), SECRET, 0.95, "url-token")
    folded = fold_ascii_case(text)
    if not any(t in folded for t in _PASSWORD_TRIGGERS):
        return
    for m in _PASSWORD_CUE.finditer(text):
        value = m.group(1).rstrip(".,;)")
        # a cue followed by a plain lower-case word is prose ("Passwort vergessen"), not a secret
        if (value.isalpha() and (value.islower() or value.istitle())) or "://" in value:
            continue
        yield Span(m.start(1), m.start(1) + len(value), SECRET, 0.9, "password-cue")


class SecretDetector:
    """Credentials and API keys."""

    name = "secrets"

    def detect(self, text: str, language: str) -> list[Span]:
        """All secret spans in the text."""
        return list(find_secrets(text))
