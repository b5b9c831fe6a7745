"""Feedback, the prompt library with German full-text search, the dataset quarantine, audit, and roles."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from faker import Faker
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from schleuse_common.bus import BusError
from schleuse_common.contracts import chat_api as api
from schleuse_common.contracts.audit import AuditEvent

from .conftest import SYSTEM_PROMPT, Chat, eventually, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")
fake = Faker("de_DE")


@pytest_asyncio.fixture(loop_scope="session")
async def audits(chat: Chat) -> AsyncIterator[list[tuple[str, dict[str, object]]]]:
    seen: list[tuple[str, dict[str, object]]] = []

    async def on_msg(msg: Msg) -> None:
        seen.append((msg.subject, json.loads(msg.data)))

    sub = await chat.bus.nc.subscribe("audit.chat.>", cb=on_msg)
    yield seen
    await sub.unsubscribe()


async def _answered(chat: Chat, user_text: str) -> tuple[api.ChatTurnFinal, str]:
    user = chat.actor("user", department="Recht")
    _, final = await chat.turn(user, user_text, assistant_id=chat.department_assistant)
    assert final.thread_id
    await chat.thread(user, final.thread_id, 2)
    return final, user.id


async def test_feedback_is_stored_and_only_on_ones_own_answers(chat: Chat) -> None:
    user = chat.actor("user")
    _, final = await chat.turn(user, "Bewerte mich", assistant_id=chat.department_assistant)
    assert final.thread_id and final.message_id
    view = await chat.thread(user, final.thread_id, 2)
    req = api.FeedbackRequest(message_id=final.message_id, thumbs="down", stars=2, labels=["ungenau"], comment="Falsch")
    fb = await chat.ask(api.FEEDBACK_PUT, req, api.FeedbackView, user)
    assert (fb.thumbs, fb.stars, fb.labels, fb.comment) == ("down", 2, ["ungenau"], "Falsch")
    for actor, message_id in ((chat.actor("user"), final.message_id), (user, view.messages[0].id)):
        with pytest.raises(BusError) as err:  # someone else's answer, or a question instead of an answer
            await chat.ask(
                api.FEEDBACK_PUT, api.FeedbackRequest(message_id=message_id, stars=5), api.FeedbackView, actor
            )
        assert err.value.status == 404
    with pytest.raises(BusError) as err:
        await chat.ask(
            api.FEEDBACK_PUT,
            api.FeedbackRequest.model_construct(message_id="x", stars=9, labels=[]),
            api.FeedbackView,
            user,
        )
    assert err.value.status == 422


async def test_positive_answers_enter_quarantine_redacted_and_stewards_decide(
    chat: Chat, audits: list[tuple[str, dict[str, object]]]
) -> None:
    email = fake.email()
    final, owner = await _answered(chat, f"Mail an {email}: {unique('Dankeschön')}")
    user = chat.actor("user", actor_id=owner)
    assert final.message_id
    await chat.ask(
        api.FEEDBACK_PUT, api.FeedbackRequest(message_id=final.message_id, thumbs="up"), api.FeedbackView, user
    )
    steward = chat.actor("steward", department="Recht")

    async def quarantined() -> list[api.DatasetItem]:
        page = await chat.ask(api.DATASET_ITEMS, api.DatasetItemsRequest(limit=200), api.Page[api.DatasetItem], steward)
        return [i for i in page.items if i.prompt and "Dankeschön" in i.prompt]

    items = await eventually(quarantined, bool)
    assert items and len(items) == 1
    item = items[0]
    assert item.prompt and item.answer
    assert email not in item.prompt and email not in item.answer  # redacted form only
    assert "[EMAIL_1]" in item.prompt and "[EMAIL_1]" in item.answer
    other_steward = chat.actor("steward", department="Kommunikation")
    page = await chat.ask(api.DATASET_ITEMS, api.DatasetItemsRequest(), api.Page[api.DatasetItem], other_steward)
    assert item.id not in [i.id for i in page.items]  # stewards see their department's items

    with pytest.raises(BusError) as err:
        await chat.ask(api.DATASET_REVIEW, api.ReviewDecision(id=item.id, decision="reject"), api.DatasetItem, steward)
    assert err.value.status == 422  # a rejection needs a reason
    approved = await chat.ask(
        api.DATASET_REVIEW, api.ReviewDecision(id=item.id, decision="approve"), api.DatasetItem, steward
    )
    assert approved.status == "approved"
    with pytest.raises(BusError) as err:  # decided once
        await chat.ask(
            api.DATASET_REVIEW,
            api.ReviewDecision(id=item.id, decision="reject", reason="zu spät"),
            api.DatasetItem,
            steward,
        )
    assert err.value.status == 404

    openai = await chat.ask(api.DATASET_EXPORT, api.DatasetExportRequest(format="openai"), api.DatasetExport, steward)
    lines = [json.loads(line) for line in openai.jsonl.splitlines()]
    ours = [line for line in lines if "Dankeschön" in line["messages"][1]["content"]]
    assert len(ours) == 1 and openai.count == len(lines)
    assert [m["role"] for m in ours[0]["messages"]] == ["system", "user", "assistant"]
    assert ours[0]["messages"][0]["content"] == SYSTEM_PROMPT
    assert email not in openai.jsonl
    qa = await chat.ask(api.DATASET_EXPORT, api.DatasetExportRequest(format="qa"), api.DatasetExport, steward)
    row = next(json.loads(line) for line in qa.jsonl.splitlines() if "Dankeschön" in line)
    assert set(row) == {"id", "question", "answer"} and row["answer"].startswith("Antwort: ")

    subjects = [s for s, _ in await eventually(lambda: _copy(audits), lambda a: len(a) >= 3)]
    assert "audit.chat.dataset_approve" in subjects and "audit.chat.dataset_export" in subjects
    approve = next(env for s, env in audits if s == "audit.chat.dataset_approve")
    event = AuditEvent.model_validate(approve["data"])
    assert event.target_id == item.id and approve["actor"]["id"] == steward.id  # type: ignore[index]
    assert "Dankeschön" not in json.dumps([env for _, env in audits])  # ids, never content


async def test_negative_feedback_does_not_enter_quarantine(chat: Chat) -> None:
    marker = unique("Schlecht")
    final, owner = await _answered(chat, marker)
    assert final.message_id
    user = chat.actor("user", actor_id=owner)
    await chat.ask(
        api.FEEDBACK_PUT,
        api.FeedbackRequest(message_id=final.message_id, thumbs="down", stars=5),
        api.FeedbackView,
        user,
    )
    steward = chat.actor("steward", department="Recht")
    page = await chat.ask(api.DATASET_ITEMS, api.DatasetItemsRequest(limit=200), api.Page[api.DatasetItem], steward)
    assert not [i for i in page.items if i.prompt and marker in i.prompt]


async def test_prompt_library_from_saved_prompt_to_department_search(
    chat: Chat, audits: list[tuple[str, dict[str, object]]]
) -> None:
    author = chat.actor("user", department="Recht")
    email = fake.email()
    body = f"Fasse die Verträge zum {{{{thema}}}} zusammen und schicke sie an {email}."
    saved = await chat.ask(
        api.PROMPTS_CREATE, api.PromptFields(title="Vertragsübersicht", body=body), api.PromptView, author
    )
    assert saved.variables == ["thema"]
    mine = await chat.ask(api.PROMPTS_LIST, api.PageRequest(), api.Page[api.PromptView], author)
    assert [p.id for p in mine.items] == [saved.id]
    with pytest.raises(BusError) as err:
        await chat.ask(api.PROMPTS_GET, api.ById(id=saved.id), api.PromptView, chat.actor("user"))
    assert err.value.status == 404

    candidate = await chat.ask(api.PROMPTS_SUBMIT, api.ById(id=saved.id), api.LibraryPrompt, author)
    assert candidate.status == "candidate" and email not in candidate.body and "[EMAIL_1]" in candidate.body
    with pytest.raises(BusError) as err:
        await chat.ask(api.PROMPTS_SUBMIT, api.ById(id=saved.id), api.LibraryPrompt, author)
    assert err.value.status == 409
    reader = chat.actor("user", department="Recht")
    search = api.LibrarySearch(query="Verträgen")
    assert not (await chat.ask(api.LIBRARY_SEARCH, search, api.Page[api.LibraryPrompt], reader)).items  # not yet

    steward = chat.actor("steward", department="Recht")
    pending = await chat.ask(api.LIBRARY_CANDIDATES, api.PageRequest(), api.Page[api.LibraryPrompt], steward)
    assert candidate.id in [p.id for p in pending.items]
    published = await chat.ask(
        api.LIBRARY_REVIEW, api.ReviewDecision(id=candidate.id, decision="approve"), api.LibraryPrompt, steward
    )
    assert published.status == "published"

    found = await chat.ask(api.LIBRARY_SEARCH, search, api.Page[api.LibraryPrompt], reader)  # German stemming
    assert [p.id for p in found.items] == [candidate.id] and found.items[0].rank
    elsewhere = chat.actor("user", department="Kommunikation")
    assert not (await chat.ask(api.LIBRARY_SEARCH, search, api.Page[api.LibraryPrompt], elsewhere)).items

    used = await chat.ask(
        api.LIBRARY_USE, api.LibraryUse(id=candidate.id, values={"thema": "Mietrecht"}), api.LibraryUsed, reader
    )
    assert "Verträge zum Mietrecht zusammen" in used.text and used.missing == []
    await chat.ask(api.LIBRARY_RATE, api.LibraryRate(id=candidate.id, stars=4), api.LibraryPrompt, reader)
    rated = await chat.ask(api.LIBRARY_RATE, api.LibraryRate(id=candidate.id, stars=2), api.LibraryPrompt, author)
    assert (rated.usage_count, rated.rating_avg, rated.rating_count) == (1, 3.0, 2)
    with pytest.raises(BusError) as err:
        await chat.ask(api.LIBRARY_USE, api.LibraryUse(id=candidate.id), api.LibraryUsed, elsewhere)
    assert err.value.status == 404
    subjects = [s for s, _ in await eventually(lambda: _copy(audits), lambda a: bool(a))]
    assert "audit.chat.library_promote" in subjects


SUBJECT_ROLES: dict[str, tuple[str, object]] = {
    api.ASSISTANTS_LIST: ("user", api.PageRequest()),
    api.ASSISTANTS_ADMIN_LIST: ("admin", api.PageRequest()),
    api.ASSISTANTS_GET: ("admin", api.ById(id="none")),
    api.ASSISTANTS_CREATE: ("admin", api.AssistantFields(name="RBAC", departments=["RBAC"], active=False)),
    api.ASSISTANTS_UPDATE: ("admin", api.AssistantUpdate(id="none", patch=api.AssistantPatch())),
    api.THREADS_LIST: ("user", api.PageRequest()),
    api.THREADS_GET: ("user", api.ById(id="none")),
    api.THREADS_RENAME: ("user", api.ThreadRename(id="none", title="x")),
    api.THREADS_DELETE: ("user", api.ById(id="none")),
    api.FEEDBACK_PUT: ("user", api.FeedbackRequest(message_id="none", thumbs="up")),
    api.PROMPTS_LIST: ("user", api.PageRequest()),
    api.PROMPTS_CREATE: ("user", api.PromptFields(title="t", body="b")),
    api.PROMPTS_GET: ("user", api.ById(id="none")),
    api.PROMPTS_DELETE: ("user", api.ById(id="none")),
    api.PROMPTS_SUBMIT: ("user", api.ById(id="none")),
    api.LIBRARY_SEARCH: ("user", api.LibrarySearch()),
    api.LIBRARY_USE: ("user", api.LibraryUse(id="none")),
    api.LIBRARY_RATE: ("user", api.LibraryRate(id="none", stars=3)),
    api.LIBRARY_CANDIDATES: ("steward", api.PageRequest()),
    api.LIBRARY_REVIEW: ("steward", api.ReviewDecision(id="none", decision="approve")),
    api.DATASET_ITEMS: ("steward", api.DatasetItemsRequest()),
    api.DATASET_REVIEW: ("steward", api.ReviewDecision(id="none", decision="approve")),
    api.DATASET_EXPORT: ("steward", api.DatasetExportRequest()),
}


@pytest.mark.parametrize("subject", sorted(SUBJECT_ROLES))
async def test_every_subject_checks_roles_again(chat: Chat, subject: str) -> None:
    allowed, data = SUBJECT_ROLES[subject]
    assert isinstance(data, BaseModel)
    for role in ("user", "steward", "dpo", "admin", None):
        actor = chat.actor(role) if role else None
        try:
            await chat.ask(subject, data, api.Deleted, actor)  # reply shape does not matter for the status
            status = 200
        except ValidationError:  # answered: only the reply's shape differs
            status = 200
        except BusError as e:
            status = e.status
        if role is None:
            assert status == 401, (subject, role)
        elif role == allowed:
            assert status not in (401, 403), (subject, role, status)
        else:
            assert status == 403, (subject, role, status)


async def _copy(items: list[tuple[str, dict[str, object]]]) -> list[tuple[str, dict[str, object]]]:
    return list(items)
