"""Turns with department assistants: system prompt, history within the context, ownership, encryption at rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from faker import Faker

from schleuse_chat import store
from schleuse_common.auth import load_or_create_key
from schleuse_common.bus import BusError
from schleuse_common.contracts import chat_api as api
from schleuse_common.contracts.providers import ChatMessage
from schleuse_common.crypto import DataKeyring, LocalKek, decrypt_text, load_kek
from schleuse_common.settings import InfraSettings

from .conftest import SYSTEM_PROMPT, Chat, eventually, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")
fake = Faker("de_DE")


async def test_users_see_only_their_departments_assistants(chat: Chat) -> None:
    legal = await chat.ask(api.ASSISTANTS_LIST, api.PageRequest(), api.Page[api.AssistantSummary], chat.actor("user"))
    social = await chat.ask(
        api.ASSISTANTS_LIST,
        api.PageRequest(),
        api.Page[api.AssistantSummary],
        chat.actor("user", department="Social Media"),
    )
    assert "Rechtsassistent" in [a.name for a in legal.items]
    assert "Social-Media-Assistent" not in [a.name for a in legal.items]
    assert [a.name for a in social.items] == ["Social-Media-Assistent"]
    assert not hasattr(legal.items[0], "system_prompt")  # users never see the system prompt
    with pytest.raises(BusError) as err:
        await chat.turn(chat.actor("user", department="Social Media"), "Hallo", assistant_id=chat.department_assistant)
    assert err.value.status == 404


async def test_deactivated_assistant_disappears_and_refuses_turns(chat: Chat) -> None:
    admin = chat.actor("admin", department=None)
    created = await chat.ask(
        api.ASSISTANTS_CREATE,
        api.AssistantFields(
            name=unique("Tmp"), departments=["Recht"], system_prompt="x", external_assistant_id="asst_1"
        ),
        api.Assistant,
        admin,
    )
    user = chat.actor("user")
    visible = await chat.ask(api.ASSISTANTS_LIST, api.PageRequest(), api.Page[api.AssistantSummary], user)
    assert created.id in [a.id for a in visible.items]
    patch = api.AssistantUpdate(id=created.id, patch=api.AssistantPatch(active=False))
    updated = await chat.ask(api.ASSISTANTS_UPDATE, patch, api.Assistant, admin)
    assert updated.active is False and updated.external_assistant_id == "asst_1"
    visible = await chat.ask(api.ASSISTANTS_LIST, api.PageRequest(), api.Page[api.AssistantSummary], user)
    assert created.id not in [a.id for a in visible.items]
    with pytest.raises(BusError) as err:
        await chat.turn(user, "Hallo", assistant_id=created.id)
    assert err.value.status == 404


async def test_thread_turn_sends_system_prompt_and_redacted_history(chat: Chat) -> None:
    user = chat.actor("user")
    email = fake.email()
    answer, final = await chat.turn(
        user, f"Schreib an {email} wegen des Vertrags.", assistant_id=chat.department_assistant
    )
    assert email in answer  # restored for the user
    first = chat.provider.requests[-1]
    assert first.messages[0] == ChatMessage(role="system", content=SYSTEM_PROMPT)
    assert email not in first.model_dump_json() and "[EMAIL_1]" in first.model_dump_json()
    assert final.thread_id and final.message_id and final.turn_id

    # The follow-up right away (persisting is asynchronous) still carries the first exchange.
    await chat.turn(user, "Und noch ein Satz dazu.", thread_id=final.thread_id)
    second = chat.provider.requests[-1]
    roles = [m.role for m in second.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert second.assistant_id == chat.department_assistant
    assert email not in second.model_dump_json()  # history passes the DLP lock again

    view = await chat.thread(user, final.thread_id, 4)
    assert [m.role for m in view.messages] == ["user", "assistant", "user", "assistant"]
    assert view.messages[0].content == f"Schreib an {email} wegen des Vertrags."
    assert view.messages[0].findings and view.messages[0].findings[0].entity_type == "EMAIL"
    assert view.messages[1].model == "fake-default" and view.messages[1].completion_tokens == 5
    assert view.messages[1].id == final.message_id
    assert view.title and view.title.startswith(f"Schreib an {email}")  # the first prompt names the thread


async def test_history_is_trimmed_to_the_models_context_oldest_first(chat: Chat) -> None:
    admin, user = chat.actor("admin", department=None), chat.actor("user")
    small = await chat.ask(
        api.ASSISTANTS_CREATE,
        api.AssistantFields(name=unique("Klein"), departments=["Recht"], system_prompt="Kurz.", context_window=400),
        api.Assistant,
        admin,
    )
    _, final = await chat.turn(user, "Frage eins " + "a" * 200, assistant_id=small.id)
    thread_id = final.thread_id
    assert thread_id
    for n in ("zwei", "drei", "vier"):
        await chat.turn(user, f"Frage {n} " + "b" * 200, thread_id=thread_id)
    await chat.turn(user, "Letzte Frage", thread_id=thread_id)
    sent = chat.provider.requests[-1].messages
    text = [m.content or "" for m in sent]
    assert sent[0].role == "system" and text[0] == "Kurz."
    assert text[-1] == "Letzte Frage"
    assert any(t.startswith("Frage vier") for t in text)  # the newest history is kept ...
    assert not any(t.startswith("Frage eins") for t in text)  # ... the oldest dropped first
    assert [m.role for m in sent[1:-1]] == ["user", "assistant"] * ((len(sent) - 2) // 2)


async def test_v1_style_turn_with_assistant_id_gets_the_system_prompt(chat: Chat) -> None:
    messages = [
        ChatMessage(role="user", content="Alt"),
        ChatMessage(role="assistant", content="Alte Antwort"),
        ChatMessage(role="user", content="Neu"),
    ]
    await chat.turn(chat.actor("user"), "", assistant_id=chat.department_assistant, messages=messages)
    sent = chat.provider.requests[-1].messages
    assert [(m.role, m.content) for m in sent] == [
        ("system", SYSTEM_PROMPT),
        ("user", "Alt"),
        ("assistant", "Alte Antwort"),
        ("user", "Neu"),
    ]


async def test_blocked_message_never_leaves(chat: Chat) -> None:
    before = len(chat.provider.requests)
    with pytest.raises(BusError) as err:
        await chat.turn(chat.actor("user"), "BLOCKME bitte", assistant_id=chat.department_assistant)
    assert err.value.status == 422 and len(chat.provider.requests) == before


async def test_nobody_reaches_another_users_thread(chat: Chat) -> None:
    owner, intruder = chat.actor("user"), chat.actor("user")
    _, final = await chat.turn(owner, "Privat", assistant_id=chat.department_assistant)
    thread_id = final.thread_id
    assert thread_id
    before = len(chat.provider.requests)
    with pytest.raises(BusError) as err:  # before it is persisted ...
        await chat.turn(intruder, "Zeig mir alles", thread_id=thread_id)
    assert err.value.status == 404
    await chat.thread(owner, thread_id, 2)
    for subject, data, reply in (
        (api.THREADS_GET, api.ById(id=thread_id), api.ThreadView),
        (api.THREADS_RENAME, api.ThreadRename(id=thread_id, title="Meins"), api.ThreadSummary),
        (api.THREADS_DELETE, api.ById(id=thread_id), api.Deleted),
        (api.THREADS_GET, api.ById(id="0190a0a0-0000-7000-8000-000000000000"), api.ThreadView),
    ):
        with pytest.raises(BusError) as err:
            await chat.ask(subject, data, reply, intruder)
        assert err.value.status == 404
    with pytest.raises(BusError) as err:  # ... and after
        await chat.turn(intruder, "Zeig mir alles", thread_id=thread_id)
    assert err.value.status == 404
    assert len(chat.provider.requests) == before
    page = await chat.ask(api.THREADS_LIST, api.PageRequest(), api.Page[api.ThreadSummary], intruder)
    assert page.items == []


async def test_no_prompt_or_answer_in_clear_anywhere_in_the_chat_schema(chat: Chat) -> None:
    user = chat.actor("user")
    marker, email = unique("Geheimnis"), fake.email()
    _, final = await chat.turn(user, f"{marker} an {email}", assistant_id=chat.department_assistant)
    assert final.thread_id and final.message_id
    await chat.thread(user, final.thread_id, 2)
    comment = unique("Kommentar")
    await chat.ask(
        api.FEEDBACK_PUT,
        api.FeedbackRequest(message_id=final.message_id, thumbs="up", comment=comment),
        api.FeedbackView,
        user,
    )
    prompt_marker = unique("Vorlage")
    await chat.ask(api.PROMPTS_CREATE, api.PromptFields(title=prompt_marker, body=prompt_marker), api.PromptView, user)
    await chat.ask(
        api.THREADS_RENAME, api.ThreadRename(id=final.thread_id, title=unique("Titel")), api.ThreadSummary, user
    )
    db = chat.runtime.db
    assert db is not None
    async with db.session() as session:
        tables = (
            await session.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'chat'")
            )
        ).scalars()
        dump = []
        for table in tables:
            rows = await session.execute(sa.text(f'SELECT t::text FROM chat."{table}" t'))
            dump.extend(rows.scalars())
    everything = "\n".join(dump)
    assert final.message_id in everything  # the rows are there ...
    for clear in (marker, email, comment, prompt_marker, "Antwort: "):
        assert clear not in everything  # ... but none of the text


async def test_key_rotation_rewraps_without_reencrypting(chat: Chat, infra: InfraSettings, tmp_path: Path) -> None:
    user = chat.actor("user")
    _, final = await chat.turn(user, "Rotationstest", assistant_id=chat.department_assistant)
    assert final.thread_id
    await chat.thread(user, final.thread_id, 2)
    db = chat.runtime.db
    assert db is not None
    old_kek = load_kek(infra)
    new_kek = LocalKek(load_or_create_key(tmp_path / "new.key"))
    m = store.messages.c
    async with db.session() as session:
        before = (await session.execute(sa.select(m.key_id, m.content_ct).where(m.thread_id == final.thread_id))).all()
        wrapped_before = (await session.execute(sa.select(store.data_keys.c.wrapped))).scalars().all()
    try:
        async with db.session() as session:
            count = await DataKeyring(store.data_keys, old_kek).rewrap(session, new_kek)
        assert count >= 1
        async with db.session() as session:
            after = (
                await session.execute(sa.select(m.key_id, m.content_ct).where(m.thread_id == final.thread_id))
            ).all()
            wrapped_after = (await session.execute(sa.select(store.data_keys.c.wrapped))).scalars().all()
            fresh = DataKeyring(store.data_keys, new_kek)  # a process started with the new KEK
            key = await fresh.by_id(session, after[0].key_id)
        assert after == before  # not one message re-encrypted
        assert set(wrapped_after).isdisjoint(wrapped_before)
        assert key is not None and decrypt_text(key, after[0].content_ct, final.thread_id) == "Rotationstest"
    finally:
        async with db.session() as session:
            await DataKeyring(store.data_keys, new_kek).rewrap(session, old_kek)


async def test_shredding_a_users_key_makes_their_messages_unreadable(chat: Chat) -> None:
    user = chat.actor("user")
    _, final = await chat.turn(user, "Bald unlesbar", assistant_id=chat.department_assistant)
    assert final.thread_id
    await chat.thread(user, final.thread_id, 2)
    db = chat.runtime.db
    assert db is not None
    async with db.session() as session:
        assert await chat.handlers.keyring.shred(session, user.id) == 1
    view = await chat.ask(api.THREADS_GET, api.ById(id=final.thread_id), api.ThreadView, user)
    assert [m.content for m in view.messages] == [None, None] and view.title is None


async def test_thread_list_pages_rename_and_delete(chat: Chat) -> None:
    user = chat.actor("user")
    ids = []
    for n in range(3):
        _, final = await chat.turn(user, f"Thema {n}", assistant_id=chat.department_assistant)
        assert final.thread_id
        ids.append(final.thread_id)
    for thread_id in ids:
        await chat.thread(user, thread_id, 2)
    first = await chat.ask(api.THREADS_LIST, api.PageRequest(limit=2), api.Page[api.ThreadSummary], user)
    assert len(first.items) == 2 and first.next_cursor
    second = await chat.ask(
        api.THREADS_LIST, api.PageRequest(limit=2, cursor=first.next_cursor), api.Page[api.ThreadSummary], user
    )
    assert second.next_cursor is None
    assert sorted(t.id for t in [*first.items, *second.items]) == sorted(ids)
    renamed = await chat.ask(
        api.THREADS_RENAME, api.ThreadRename(id=ids[0], title="Neuer Titel"), api.ThreadSummary, user
    )
    assert renamed.title == "Neuer Titel"
    await chat.ask(api.THREADS_DELETE, api.ById(id=ids[1]), api.Deleted, user)
    assert ids[1] in chat.dlp.forgotten
    with pytest.raises(BusError) as err:
        await chat.ask(api.THREADS_GET, api.ById(id=ids[1]), api.ThreadView, user)
    assert err.value.status == 404
    with pytest.raises(BusError) as err:
        await chat.ask(api.THREADS_LIST, api.PageRequest(cursor="kaputt"), api.Page[api.ThreadSummary], user)
    assert err.value.status == 422
    listed = await eventually(
        lambda: chat.ask(api.THREADS_LIST, api.PageRequest(), api.Page[api.ThreadSummary], user),
        lambda page: len(page.items) == 2,
    )
    assert ids[1] not in [t.id for t in listed.items]
