"""`providers.generate` (streamed reply) and `providers.models`."""

from typing import Any, Literal

from pydantic import BaseModel, Field

PROVIDERS_GENERATE = "providers.generate"
PROVIDERS_MODELS = "providers.models"


class ChatMessage(BaseModel):
    """One message of the provider-neutral conversation."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class GenerateRequest(BaseModel):
    """A completion request after DLP: `model` is an alias (`default`, `large`) or a catalogue model id."""

    model: str = "default"
    messages: list[ChatMessage]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    department: str | None = None
    assistant_id: str | None = None
    allow_escalation: bool = False
    stream: bool = True  # False: one chunk with the whole answer (fewer bus messages for a plain completion)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False


class Routing(BaseModel):
    """Which model answered and why."""

    requested: str
    provider: str
    model: str
    reason: str = "alias"
    demo: bool = False


class GenerateChunk(BaseModel):
    """One piece of a streamed answer; the last chunk carries finish_reason, usage and routing."""

    delta: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    routing: Routing | None = None
    cost: float | None = None
    currency: str | None = None


class ModelsRequest(BaseModel):
    department: str | None = None


class ModelInfo(BaseModel):
    id: str
    provider: str
    owned_by: str = "schleuse"
    context_window: int | None = None
    demo: bool = False


class ModelsResult(BaseModel):
    models: list[ModelInfo] = Field(default_factory=list)


def merge_tool_calls(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed tool-call fragments (OpenAI delta shape, keyed by `index`) joined into whole calls."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        call = calls.setdefault(int(delta.get("index", len(calls))), {"function": {"arguments": ""}})
        for key in ("id", "type", "index"):
            if delta.get(key) is not None:
                call[key] = delta[key]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def collapse(chunks: list[GenerateChunk]) -> GenerateChunk:
    """A whole streamed answer as one chunk: all text, whole tool calls, the last chunk's finish and usage."""
    last = chunks[-1]
    deltas = [d for c in chunks for d in (c.tool_calls or [])]
    return last.model_copy(
        update={"delta": "".join(c.delta for c in chunks), "tool_calls": merge_tool_calls(deltas) or None}
    )


def coalesce_chunks(first: GenerateChunk, then: GenerateChunk) -> GenerateChunk | None:
    """Two text chunks that arrived together as one (None when they must travel apart: tool calls, or a final)."""
    if first.finish_reason is not None or first.tool_calls or then.tool_calls:
        return None
    return then.model_copy(update={"delta": first.delta + then.delta})
