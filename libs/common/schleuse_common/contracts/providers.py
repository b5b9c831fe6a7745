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
