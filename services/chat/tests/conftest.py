"""The chat service in-process on the session's real NATS and Postgres, with small DLP and provider handlers.

The DLP and provider handlers are our own services' contracts served by the test (recording what
they receive); each test module gets its own bus connection that is closed at the end, so nothing of
this lingers when the e2e platform runs later in the same session.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from pydantic import BaseModel

from schleuse_chat.api_handlers import ChatApi
from schleuse_chat.handlers import ChatHandlers
from schleuse_chat.main import SPEC, wire
from schleuse_chat.settings import ChatSettings
from schleuse_common import service
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts import chat_api as api
from schleuse_common.contracts.chat import CHAT_TURN, TurnRequest
from schleuse_common.contracts.dlp import (
    DLP_FORGET,
    DLP_RESTORE,
    DLP_SCAN,
    FindingSummary,
    ForgetRequest,
    ForgetResult,
    RestoreRequest,
    RestoreResult,
    ScanRequest,
    ScanResult,
)
from schleuse_common.contracts.providers import (
    PROVIDERS_GENERATE,
    PROVIDERS_MODELS,
    ChatMessage,
    GenerateChunk,
    GenerateRequest,
    ModelInfo,
    ModelsRequest,
    ModelsResult,
    Routing,
    Usage,
)
from schleuse_common.service import Runtime
from schleuse_common.settings import InfraSettings

R = TypeVar("R", bound=BaseModel)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
SYSTEM_PROMPT = "Du bist der juristische Assistent der Rechtsabteilung."


@dataclass
class FakeDlp:
    """Emails become `[EMAIL_n]`, stable per thread; `BLOCKME` is blocked."""

    mappings: dict[str, dict[str, str]] = field(default_factory=dict)
    forgotten: list[str] = field(default_factory=list)

    async def scan(self, env: Envelope[ScanRequest]) -> ScanResult:
        req = env.data
        if "BLOCKME" in req.text:
            return ScanResult(
                text="", blocked=True, findings=[FindingSummary(entity_type="IBAN", count=1, action="block")]
            )
        mapping = self.mappings.setdefault(req.thread_id, {})
        count = 0

        def swap(m: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return mapping.setdefault(m.group(0), f"[EMAIL_{len(mapping) + 1}]")

        text = EMAIL.sub(swap, req.text)
        findings = [FindingSummary(entity_type="EMAIL", count=count, action="redact")] if count else []
        return ScanResult(text=text, findings=findings)

    async def restore(self, env: Envelope[RestoreRequest]) -> RestoreResult:
        text = env.data.text
        for original, placeholder in self.mappings.get(env.data.thread_id, {}).items():
            text = text.replace(placeholder, original)
        return RestoreResult(text=text)

    async def forget(self, env: Envelope[ForgetRequest]) -> ForgetResult:
        self.forgotten.append(env.data.thread_id)
        return ForgetResult(deleted=len(self.mappings.pop(env.data.thread_id, {})))


@dataclass
class FakeProvider:
    """Answers `Antwort: <last user message>` in two pieces and records every request."""

    requests: list[GenerateRequest] = field(default_factory=list)

    async def generate(self, env: Envelope[GenerateRequest]) -> AsyncIterator[GenerateChunk]:
        req = env.data
        self.requests.append(req)
        last = next((m.content or "" for m in reversed(req.messages) if m.role == "user"), "")
        yield GenerateChunk(delta="Antwort: ")
        yield GenerateChunk(delta=last)
        yield GenerateChunk(
            finish_reason="stop",
            usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
            routing=Routing(requested=req.model, provider="fake", model=f"fake-{req.model}"),
        )

    async def models(self, env: Envelope[ModelsRequest]) -> ModelsResult:
        return ModelsResult(models=[ModelInfo(id="tiny", provider="fake", context_window=400)])


@dataclass
class Chat:
    """What a test talks to: the fakes, the service's parts and a client bus."""

    bus: Bus
    dlp: FakeDlp
    provider: FakeProvider
    handlers: ChatHandlers
    api: ChatApi
    runtime: Runtime
    actor_key: bytes
    department_assistant: str

    def actor(self, *roles: str, department: str | None = "Recht", actor_id: str | None = None) -> Actor:
        return Actor(id=actor_id or f"u-{uuid.uuid4().hex[:12]}", roles=list(roles), department=department).signed(
            self.actor_key
        )

    async def ask(self, subject: str, data: BaseModel, reply: type[R], actor: Actor | None) -> R:
        return await self.bus.request(subject, data, reply, actor=actor, timeout=10)

    async def turn(
        self,
        actor: Actor,
        content: str,
        *,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        messages: list[ChatMessage] | None = None,
    ) -> tuple[str, api.ChatTurnFinal]:
        req = TurnRequest(
            messages=messages or [ChatMessage(role="user", content=content)],
            thread_id=thread_id,
            assistant_id=assistant_id,
        )
        parts: list[str] = []
        final: api.ChatTurnFinal | None = None
        async for chunk in self.bus.request_stream(CHAT_TURN, req, api.ChatTurnFinal, actor=actor, timeout=10):
            parts.append(chunk.delta)
            if chunk.finish_reason:
                final = chunk
        assert final is not None
        return "".join(parts), final

    async def thread(self, actor: Actor, thread_id: str, messages: int) -> api.ThreadView:
        """The thread once `messages` messages are persisted (the persist consumer is asynchronous)."""
        return await eventually(
            lambda: self.ask(api.THREADS_GET, api.ById(id=thread_id), api.ThreadView, actor),
            lambda view: len(view.messages) >= messages,
        )


async def eventually(
    probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], attempts: int = 100, pause: float = 0.05
) -> Any:
    """Poll until `ok(result)`; returns the last result (the caller asserts on it)."""
    result: Any = None
    for _ in range(attempts):
        try:
            result = await probe()
        except BusError as e:
            if e.status != 404:
                raise
            result = None
        if result is not None and ok(result):
            return result
        await asyncio.sleep(pause)
    return result


@pytest.fixture(scope="module")
def chat_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chatcfg") / "schleuse.yaml"
    path.write_text(
        "assistants:\n"
        "  - name: Rechtsassistent\n"
        "    model: default\n"
        "    department: Recht\n"
        f"    system_prompt: {SYSTEM_PROMPT}\n"
        "  - name: Social-Media-Assistent\n"
        "    model: default\n"
        "    department: Social Media\n"
        "    system_prompt: Du schreibst kurze Posts.\n"
        "retention:\n"
        "  - purpose: chat\n"
        "    retention_days: 365\n",
        encoding="utf-8",
    )
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chat(infra: InfraSettings, actor_key: bytes, chat_config: Path) -> AsyncIterator[Chat]:
    saved = os.environ.get("SCHLEUSE_CONFIG")
    os.environ["SCHLEUSE_CONFIG"] = str(chat_config)
    built: dict[str, Any] = {}

    async def capture(rt: Runtime) -> None:
        built["handlers"], built["api"] = await wire(rt)

    try:
        rt = await service.start(SPEC, ChatSettings(), capture)
    finally:
        if saved is None:
            os.environ.pop("SCHLEUSE_CONFIG", None)
        else:
            os.environ["SCHLEUSE_CONFIG"] = saved
    client = await Bus.connect(infra.nats_url, "chat-tests", actor_key=actor_key)
    dlp, provider = FakeDlp(), FakeProvider()
    await client.serve(DLP_SCAN, ScanRequest, dlp.scan)
    await client.serve(DLP_RESTORE, RestoreRequest, dlp.restore)
    await client.serve(DLP_FORGET, ForgetRequest, dlp.forget)
    await client.serve_stream(PROVIDERS_GENERATE, GenerateRequest, provider.generate)
    await client.serve(PROVIDERS_MODELS, ModelsRequest, provider.models)
    await client.nc.flush()
    admin = Actor(id="admin-1", roles=["admin"]).signed(actor_key)
    page = await client.request(api.ASSISTANTS_ADMIN_LIST, api.PageRequest(), api.Page[api.Assistant], actor=admin)
    legal = next(a.id for a in page.items if a.name == "Rechtsassistent")
    try:
        yield Chat(client, dlp, provider, built["handlers"], built["api"], rt, actor_key, legal)
    finally:
        await client.close()
        await service.stop(rt)


def unique(prefix: str) -> str:
    """A marker no other test writes."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}-{int(time.time())}"
