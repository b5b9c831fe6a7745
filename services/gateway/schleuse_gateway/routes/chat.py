"""`/api` of the chat domain: assistants, threads and turns, feedback, prompt library, datasets.

Routes only check roles and translate HTTP to `chat.api.*` requests; the chat service checks roles and
ownership again and answers 404 for anything the caller does not own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts import chat_api as api
from schleuse_common.contracts.chat import CHAT_TURN, TurnRequest
from schleuse_common.contracts.providers import ChatMessage, Usage
from schleuse_common.service import Runtime
from schleuse_gateway.deps import require_roles
from schleuse_gateway.errors import status_of

R = TypeVar("R", bound=BaseModel)

PROBLEM = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unauthenticated", **PROBLEM},
    403: {"description": "Forbidden for the caller's roles", **PROBLEM},
    404: {"description": "Not found (or not the caller's)", **PROBLEM},
    422: {"description": "Invalid request", **PROBLEM},
}

User = Annotated[Actor, Depends(require_roles("user"))]
Admin = Annotated[Actor, Depends(require_roles("admin"))]
Steward = Annotated[Actor, Depends(require_roles("steward"))]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]


class TurnInput(BaseModel):
    """A message to an assistant; `stream` answers as server-sent events."""

    content: str = Field(min_length=1, max_length=100_000)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)


class NewThread(TurnInput):
    assistant_id: str


class TurnAnswer(BaseModel):
    """The answer of a turn (non-streamed); `message_id` is what feedback refers to."""

    thread_id: str
    turn_id: str | None
    message_id: str | None
    content: str
    model: str | None
    finish_reason: str | None
    usage: Usage | None


class Rename(BaseModel):
    title: str = Field(min_length=1, max_length=300)


class Feedback(BaseModel):
    thumbs: Literal["up", "down"] | None = None
    stars: int | None = Field(default=None, ge=1, le=5)
    labels: list[str] = Field(default_factory=list, max_length=20)
    comment: str | None = Field(default=None, max_length=4000)


class Review(BaseModel):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=2000)


class Rating(BaseModel):
    stars: int = Field(ge=1, le=5)


class UseValues(BaseModel):
    values: dict[str, str] = Field(default_factory=dict)


def build_router(rt: Runtime, turn_timeout: float = 120.0) -> APIRouter:
    """The chat routes, bound to the runtime's bus."""
    bus = rt.bus
    router = APIRouter(prefix="/api", tags=["chat"], responses=ERRORS)

    async def ask(subject: str, data: BaseModel, reply: type[R], actor: Actor) -> R:
        return await bus.request(subject, data, reply, actor=actor, timeout=10.0)

    # -- assistants -----------------------------------------------------------------------

    @router.get("/assistants", summary="Assistants of the caller's department")
    async def assistants(actor: User) -> api.Page[api.AssistantSummary]:
        return await ask(api.ASSISTANTS_LIST, api.PageRequest(), api.Page[api.AssistantSummary], actor)

    @router.get("/admin/assistants", summary="All assistants (admin)")
    async def admin_assistants(actor: Admin, cursor: Cursor = None, limit: Limit = 50) -> api.Page[api.Assistant]:
        page = api.PageRequest(cursor=cursor, limit=limit)
        return await ask(api.ASSISTANTS_ADMIN_LIST, page, api.Page[api.Assistant], actor)

    @router.post("/admin/assistants", status_code=201, summary="Create an assistant (admin)")
    async def create_assistant(body: api.AssistantFields, actor: Admin) -> api.Assistant:
        return await ask(api.ASSISTANTS_CREATE, body, api.Assistant, actor)

    @router.get("/admin/assistants/{assistant_id}", summary="One assistant with its configuration (admin)")
    async def get_assistant(assistant_id: str, actor: Admin) -> api.Assistant:
        return await ask(api.ASSISTANTS_GET, api.ById(id=assistant_id), api.Assistant, actor)

    @router.patch("/admin/assistants/{assistant_id}", summary="Edit or deactivate an assistant (admin)")
    async def update_assistant(assistant_id: str, body: api.AssistantPatch, actor: Admin) -> api.Assistant:
        update = api.AssistantUpdate(id=assistant_id, patch=body)
        return await ask(api.ASSISTANTS_UPDATE, update, api.Assistant, actor)

    # -- threads and turns ----------------------------------------------------------------

    @router.get("/threads", summary="The caller's threads, newest first")
    async def threads(actor: User, cursor: Cursor = None, limit: Limit = 50) -> api.Page[api.ThreadSummary]:
        page = api.PageRequest(cursor=cursor, limit=limit)
        return await ask(api.THREADS_LIST, page, api.Page[api.ThreadSummary], actor)

    @router.get("/threads/{thread_id}", summary="Open a thread with its messages")
    async def thread(thread_id: str, actor: User) -> api.ThreadView:
        return await ask(api.THREADS_GET, api.ById(id=thread_id), api.ThreadView, actor)

    @router.patch("/threads/{thread_id}", summary="Rename a thread")
    async def rename(thread_id: str, body: Rename, actor: User) -> api.ThreadSummary:
        return await ask(api.THREADS_RENAME, api.ThreadRename(id=thread_id, title=body.title), api.ThreadSummary, actor)

    @router.delete("/threads/{thread_id}", summary="Delete a thread and its messages")
    async def delete_thread(thread_id: str, actor: User) -> api.Deleted:
        return await ask(api.THREADS_DELETE, api.ById(id=thread_id), api.Deleted, actor)

    @router.post(
        "/threads",
        summary="Start a thread with an assistant (JSON, or SSE with `stream: true`)",
        response_model=TurnAnswer,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def start_thread(body: NewThread, actor: User) -> Response:
        return await _turn(bus, actor, body, None, body.assistant_id, turn_timeout)

    @router.post(
        "/threads/{thread_id}/messages",
        summary="Continue a thread (JSON, or SSE with `stream: true`)",
        response_model=TurnAnswer,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def continue_thread(thread_id: str, body: TurnInput, actor: User) -> Response:
        return await _turn(bus, actor, body, thread_id, None, turn_timeout)

    # -- feedback -------------------------------------------------------------------------

    @router.put("/messages/{message_id}/feedback", summary="Rate an answer (thumbs, stars, labels, comment)")
    async def feedback(message_id: str, body: Feedback, actor: User) -> api.FeedbackView:
        req = api.FeedbackRequest(message_id=message_id, **body.model_dump())
        return await ask(api.FEEDBACK_PUT, req, api.FeedbackView, actor)

    # -- prompt library -------------------------------------------------------------------

    @router.get("/prompts", summary="The caller's saved prompts")
    async def prompts(actor: User, cursor: Cursor = None, limit: Limit = 50) -> api.Page[api.PromptView]:
        page = api.PageRequest(cursor=cursor, limit=limit)
        return await ask(api.PROMPTS_LIST, page, api.Page[api.PromptView], actor)

    @router.post("/prompts", status_code=201, summary="Save a prompt (variables as {{name}})")
    async def create_prompt(body: api.PromptFields, actor: User) -> api.PromptView:
        return await ask(api.PROMPTS_CREATE, body, api.PromptView, actor)

    @router.get("/prompts/{prompt_id}", summary="One of the caller's prompts")
    async def prompt(prompt_id: str, actor: User) -> api.PromptView:
        return await ask(api.PROMPTS_GET, api.ById(id=prompt_id), api.PromptView, actor)

    @router.delete("/prompts/{prompt_id}", summary="Delete one of the caller's prompts")
    async def delete_prompt(prompt_id: str, actor: User) -> api.Deleted:
        return await ask(api.PROMPTS_DELETE, api.ById(id=prompt_id), api.Deleted, actor)

    @router.post("/prompts/{prompt_id}/submit", status_code=201, summary="Offer a prompt to the department library")
    async def submit_prompt(prompt_id: str, actor: User) -> api.LibraryPrompt:
        return await ask(api.PROMPTS_SUBMIT, api.ById(id=prompt_id), api.LibraryPrompt, actor)

    @router.get("/library", summary="Search the department library (German full-text search)")
    async def library(
        actor: User, q: Annotated[str | None, Query(max_length=500)] = None, cursor: Cursor = None, limit: Limit = 50
    ) -> api.Page[api.LibraryPrompt]:
        req = api.LibrarySearch(query=q, cursor=cursor, limit=limit)
        return await ask(api.LIBRARY_SEARCH, req, api.Page[api.LibraryPrompt], actor)

    @router.post("/library/{prompt_id}/use", summary="Fill in a library prompt's variables (counts a use)")
    async def use(prompt_id: str, body: UseValues, actor: User) -> api.LibraryUsed:
        return await ask(api.LIBRARY_USE, api.LibraryUse(id=prompt_id, values=body.values), api.LibraryUsed, actor)

    @router.put("/library/{prompt_id}/rating", summary="Rate a library prompt (1-5 stars)")
    async def rate(prompt_id: str, body: Rating, actor: User) -> api.LibraryPrompt:
        return await ask(api.LIBRARY_RATE, api.LibraryRate(id=prompt_id, stars=body.stars), api.LibraryPrompt, actor)

    @router.get("/library/candidates", summary="Prompts offered to the library (steward)")
    async def candidates(actor: Steward, cursor: Cursor = None, limit: Limit = 50) -> api.Page[api.LibraryPrompt]:
        page = api.PageRequest(cursor=cursor, limit=limit)
        return await ask(api.LIBRARY_CANDIDATES, page, api.Page[api.LibraryPrompt], actor)

    @router.post("/library/{prompt_id}/review", summary="Publish or reject a library candidate (steward, audited)")
    async def review_prompt(prompt_id: str, body: Review, actor: Steward) -> api.LibraryPrompt:
        req = api.ReviewDecision(id=prompt_id, **body.model_dump())
        return await ask(api.LIBRARY_REVIEW, req, api.LibraryPrompt, actor)

    # -- datasets -------------------------------------------------------------------------

    @router.get("/datasets/items", summary="Redacted exchanges by review status (steward)")
    async def dataset_items(
        actor: Steward, status: api.DatasetStatus = "quarantine", cursor: Cursor = None, limit: Limit = 50
    ) -> api.Page[api.DatasetItem]:
        req = api.DatasetItemsRequest(status=status, cursor=cursor, limit=limit)
        return await ask(api.DATASET_ITEMS, req, api.Page[api.DatasetItem], actor)

    @router.post("/datasets/items/{item_id}/review", summary="Approve or reject a quarantined exchange (steward)")
    async def review_item(item_id: str, body: Review, actor: Steward) -> api.DatasetItem:
        req = api.ReviewDecision(id=item_id, **body.model_dump())
        return await ask(api.DATASET_REVIEW, req, api.DatasetItem, actor)

    @router.get(
        "/datasets/export",
        summary="Approved exchanges as JSONL: OpenAI fine-tuning chat format or question/answer (steward)",
        responses={200: {"content": {"application/x-ndjson": {}}}},
        response_class=Response,
    )
    async def export(
        actor: Steward, format: Literal["openai", "qa"] = "openai", assistant_id: str | None = None
    ) -> Response:
        req = api.DatasetExportRequest(format=format, assistant_id=assistant_id)
        result = await bus.request(api.DATASET_EXPORT, req, api.DatasetExport, actor=actor, timeout=60.0)
        headers = {
            "Content-Disposition": f'attachment; filename="schleuse-dataset-{format}.jsonl"',
            "X-Schleuse-Count": str(result.count),
        }
        return Response(result.jsonl, media_type="application/x-ndjson", headers=headers)

    return router


async def _turn(
    bus: Bus, actor: Actor, body: TurnInput, thread_id: str | None, assistant_id: str | None, timeout: float
) -> Response:
    """Run a turn; an unknown or foreign `thread_id` is a 404 before anything leaves the house."""
    turn = TurnRequest(
        messages=[ChatMessage(role="user", content=body.content)],
        thread_id=thread_id,
        assistant_id=assistant_id,
        stream=body.stream,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
    )
    chunks = bus.request_stream(CHAT_TURN, turn, api.ChatTurnFinal, actor=actor, timeout=timeout)
    first = await anext(chunks)  # errors before the first chunk become problem details
    if body.stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(_sse(first, chunks, thread_id), media_type="text/event-stream", headers=headers)
    parts = [first.delta]
    last = first
    async for chunk in chunks:
        parts.append(chunk.delta)
        last = chunk
    answer = TurnAnswer(
        thread_id=last.thread_id or thread_id or "",
        turn_id=last.turn_id,
        message_id=last.message_id,
        content="".join(parts),
        model=last.routing.model if last.routing else None,
        finish_reason=last.finish_reason,
        usage=last.usage,
    )
    return Response(answer.model_dump_json(), media_type="application/json")


async def _sse(
    first: api.ChatTurnFinal, rest: AsyncIterator[api.ChatTurnFinal], thread_id: str | None
) -> AsyncIterator[bytes]:
    """`event: delta` per piece of text, then `event: done` with the ids and usage (or `event: error`)."""
    chunk: api.ChatTurnFinal | None = first
    try:
        while chunk is not None:
            if chunk.delta:
                yield b"event: delta\ndata: " + orjson.dumps({"text": chunk.delta}) + b"\n\n"
            if chunk.finish_reason is not None:
                done = {
                    "thread_id": chunk.thread_id or thread_id,
                    "turn_id": chunk.turn_id,
                    "message_id": chunk.message_id,
                    "finish_reason": chunk.finish_reason,
                    "model": chunk.routing.model if chunk.routing else None,
                    "usage": chunk.usage.model_dump() if chunk.usage else None,
                }
                yield b"event: done\ndata: " + orjson.dumps(done) + b"\n\n"
            chunk = await anext(rest, None)
    except BusError as e:
        error = {"type": "about:blank", "title": e.code.replace("_", " "), "status": status_of(e), "detail": e.message}
        yield b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
