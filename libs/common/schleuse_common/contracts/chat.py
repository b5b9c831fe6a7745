"""`chat.turn` (streamed reply) and the `CHAT` stream's facts."""

from pydantic import BaseModel, Field

from schleuse_common.contracts.providers import ChatMessage, GenerateChunk, Routing, Usage

CHAT_TURN = "chat.turn"
CHAT_MESSAGE_STORED = "chat.message.stored"
CHAT_TURN_COMPLETED = "chat.turn.completed"


class TurnRequest(BaseModel):
    """One chat turn: the caller's messages (OpenAI shape) or a message to a thread."""

    messages: list[ChatMessage]
    model: str = "default"
    thread_id: str | None = None
    assistant_id: str | None = None
    stream: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None


TurnChunk = GenerateChunk


class TurnStored(BaseModel):
    """A completed turn, encrypted, as persisted from the CHAT stream (no clear text)."""

    turn_id: str
    thread_id: str
    owner_id: str
    assistant_id: str | None = None
    key_id: str
    prompt_ciphertext: str
    answer_ciphertext: str
    routing: Routing | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float = 0.0
