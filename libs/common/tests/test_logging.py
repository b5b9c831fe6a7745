"""The logger never carries content or PII fields."""

from schleuse_common.auth import Actor, keyed_hash
from schleuse_common.logging import MASK, mask_sensitive


def test_sensitive_fields_are_masked() -> None:
    event = {
        "event": "chat.turn",
        "prompt": "Mein Name ist Max",
        "messages": [{"content": "x"}],
        "api_key": "sk-abc",
        "Authorization": "Bearer x",
        "caller_number": "+4930123",
        "date_of_birth": "1970-01-01",
        "email": "a@b.de",
        "latency_ms": 12,
        "subject": "chat.turn",
        "status": 200,
    }
    out = mask_sensitive(None, "info", dict(event))
    for key in ("prompt", "messages", "api_key", "Authorization", "caller_number", "date_of_birth", "email"):
        assert out[key] == MASK, key
    assert out["latency_ms"] == 12 and out["subject"] == "chat.turn" and out["status"] == 200


def test_actor_signature_covers_roles_and_department() -> None:
    key = b"s" * 32
    actor = Actor(id="u", roles=["user"], department="Recht").signed(key)
    assert actor.verify(key)
    assert not actor.model_copy(update={"department": "IT"}).verify(key)
    assert not actor.verify(b"t" * 32)


def test_keyed_hash_is_stable_and_keyed() -> None:
    assert keyed_hash(b"a" * 32, "iss", "sub") == keyed_hash(b"a" * 32, "iss", "sub")
    assert keyed_hash(b"a" * 32, "iss", "sub") != keyed_hash(b"b" * 32, "iss", "sub")
