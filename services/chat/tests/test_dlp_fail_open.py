"""DLP down: turns are refused, unless an admin let the scope fail open; then they go out recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from faker import Faker

from schleuse_common.bus import BusError, Envelope
from schleuse_common.contracts.dlp import DLP_POLICIES_FAIL_OPEN, DLP_SCAN, FailOpenRequest, FailOpenScopes

from .conftest import Chat, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")
fake = Faker("de_DE")


class FakeFailOpen:
    """`dlp.policies.fail_open` as the dlp service answers it, with scopes the test sets."""

    def __init__(self) -> None:
        self.scopes = FailOpenScopes()

    async def answer(self, env: Envelope[FailOpenRequest]) -> FailOpenScopes:
        return self.scopes


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dlp_down(chat: Chat) -> AsyncIterator[FakeFailOpen]:
    """The module's chat with `dlp.scan` gone (restore and forget stay) and a settable fail-open answer."""
    fail_open = FakeFailOpen()
    await chat.bus.serve(DLP_POLICIES_FAIL_OPEN, FailOpenRequest, fail_open.answer)
    for sub in [s for s in chat.bus._subs if s.subject == DLP_SCAN]:
        await sub.unsubscribe()
        chat.bus._subs.remove(sub)
    await chat.bus.nc.flush()
    yield fail_open


async def announce_change(chat: Chat, fail_open: FakeFailOpen, scopes: FailOpenScopes) -> None:
    """What dlp does after an admin's change: answer the new scopes and publish the audit notice."""
    fail_open.scopes = scopes
    await chat.bus.nc.publish("audit.dlp.policy_put", b"{}")
    assert chat.handlers.fail_open is not None
    seen = await eventually(lambda: _scopes(chat), lambda s: s == scopes)
    assert seen == scopes


async def _scopes(chat: Chat) -> FailOpenScopes:
    assert chat.handlers.fail_open is not None
    return chat.handlers.fail_open.scopes


async def test_dlp_down_refuses_the_turn_and_sends_nothing(chat: Chat, dlp_down: FakeFailOpen) -> None:
    before = len(chat.provider.requests)
    with pytest.raises(BusError) as err:
        await chat.turn(chat.actor("user"), f"Schreib an {fake.email()}", assistant_id=chat.department_assistant)
    assert (err.value.code, err.value.status) == ("dlp_unavailable", 503)
    assert len(chat.provider.requests) == before


async def test_fail_open_scope_sends_unscanned_with_policy_event_and_audit(chat: Chat, dlp_down: FakeFailOpen) -> None:
    await announce_change(chat, dlp_down, FailOpenScopes(assistants={chat.department_assistant: True}))
    events = await chat.bus.nc.subscribe("policy.event")
    audits = await chat.bus.nc.subscribe("audit.dlp.fail_open")
    user = chat.actor("user")
    email = fake.email()
    answer, final = await chat.turn(user, f"Schreib an {email}", assistant_id=chat.department_assistant)
    assert email in answer and email in chat.provider.requests[-1].model_dump_json()  # unscanned, as allowed

    event = json.loads((await events.next_msg(timeout=5)).data)["data"]
    assert event["kind"] == "dlp.fail_open" and event["decision"] == "allow"
    assert (event["user_id"], event["assistant_id"], event["thread_id"]) == (
        user.id,
        chat.department_assistant,
        final.thread_id,
    )
    audit_msg = await audits.next_msg(timeout=5)
    audit = json.loads(audit_msg.data)
    assert audit["actor"]["id"] == user.id and audit["data"]["target_id"] == final.thread_id
    assert audit["data"]["detail"] == {
        "assistant_id": chat.department_assistant,
        "department": "Recht",
        "reason": "unavailable",
    }
    assert email not in audit_msg.data.decode()
    await events.unsubscribe()
    await audits.unsubscribe()

    # other scopes stay closed: a turn without that assistant is refused
    with pytest.raises(BusError) as err:
        await chat.turn(user, f"Schreib an {email}")
    assert err.value.code == "dlp_unavailable"


async def test_a_more_specific_closed_scope_wins_and_closing_again_refuses(chat: Chat, dlp_down: FakeFailOpen) -> None:
    await announce_change(chat, dlp_down, FailOpenScopes(default=True, departments={"Recht": False}))
    answer, _ = await chat.turn(chat.actor("user", department="Einkauf"), "Hallo")  # the default: open
    assert answer == "Antwort: Hallo"
    with pytest.raises(BusError) as err:
        await chat.turn(chat.actor("user", department="Recht"), "Hallo")  # Recht's own policy: closed
    assert err.value.code == "dlp_unavailable"
    await announce_change(chat, dlp_down, FailOpenScopes())
    with pytest.raises(BusError) as err:
        await chat.turn(chat.actor("user", department="Einkauf"), "Hallo")
    assert err.value.code == "dlp_unavailable"
