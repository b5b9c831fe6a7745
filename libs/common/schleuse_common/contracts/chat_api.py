"""`chat.api.*` request/reply subjects behind the gateway's `/api` routes, and the chat service's richer turn facts.

Every request carries the gateway-signed actor; the chat service checks roles and ownership again.
Lists use opaque cursors: pass `next_cursor` back as `cursor` to get the next page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from schleuse_common.contracts.chat import TurnStored
from schleuse_common.contracts.dlp import FindingSummary
from schleuse_common.contracts.providers import GenerateChunk

# -- subjects -------------------------------------------------------------------------------

ASSISTANTS_LIST = "chat.api.assistants.list"  # the caller's department's active assistants
ASSISTANTS_ADMIN_LIST = "chat.api.assistants.admin_list"  # every assistant (admin)
ASSISTANTS_GET = "chat.api.assistants.get"
ASSISTANTS_CREATE = "chat.api.assistants.create"
ASSISTANTS_UPDATE = "chat.api.assistants.update"

THREADS_LIST = "chat.api.threads.list"
THREADS_GET = "chat.api.threads.get"
THREADS_RENAME = "chat.api.threads.rename"
THREADS_DELETE = "chat.api.threads.delete"

FEEDBACK_PUT = "chat.api.feedback.put"

PROMPTS_LIST = "chat.api.prompts.list"
PROMPTS_CREATE = "chat.api.prompts.create"
PROMPTS_GET = "chat.api.prompts.get"
PROMPTS_DELETE = "chat.api.prompts.delete"
PROMPTS_SUBMIT = "chat.api.prompts.submit"
LIBRARY_SEARCH = "chat.api.library.search"
LIBRARY_USE = "chat.api.library.use"
LIBRARY_RATE = "chat.api.library.rate"
LIBRARY_CANDIDATES = "chat.api.library.candidates"
LIBRARY_REVIEW = "chat.api.library.review"

DATASET_ITEMS = "chat.api.datasets.items"
DATASET_REVIEW = "chat.api.datasets.review"
DATASET_EXPORT = "chat.api.datasets.export"

# Facts on the CHAT stream (ids only, never content).
CHAT_FEEDBACK_POSITIVE = "chat.feedback.positive"


# -- shared shapes --------------------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None = None


class PageRequest(BaseModel):
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=200)


class ById(BaseModel):
    id: str


class Deleted(BaseModel):
    id: str
    deleted: bool = True


# -- assistants -----------------------------------------------------------------------------

ModelAlias = str  # `default`, `large` or a catalogue model id


class AssistantFields(BaseModel):
    """What an admin sets on an assistant."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    departments: list[str] = Field(default_factory=list, description="empty: every department")
    model: ModelAlias = Field(default="default", max_length=200)
    allow_escalation: bool = False
    system_prompt: str = Field(default="", max_length=20000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=256, description="override of the model's context")
    dlp_policy: str | None = Field(default=None, max_length=100)
    external_assistant_id: str | None = Field(default=None, max_length=200, description="e.g. an OpenAI Assistant ID")
    active: bool = True


class AssistantPatch(BaseModel):
    """A partial update: fields left out (or null) keep their value."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    departments: list[str] | None = None
    model: ModelAlias | None = Field(default=None, max_length=200)
    allow_escalation: bool | None = None
    system_prompt: str | None = Field(default=None, max_length=20000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=256)
    dlp_policy: str | None = Field(default=None, max_length=100)
    external_assistant_id: str | None = Field(default=None, max_length=200)
    active: bool | None = None


class Assistant(AssistantFields):
    id: str
    created_at: datetime
    updated_at: datetime


class AssistantSummary(BaseModel):
    """What a user sees of an assistant (no system prompt)."""

    id: str
    name: str
    description: str
    model: str
    allow_escalation: bool


class AssistantUpdate(BaseModel):
    id: str
    patch: AssistantPatch


# -- threads and messages -------------------------------------------------------------------


class ThreadSummary(BaseModel):
    id: str
    assistant_id: str | None
    title: str | None
    created_at: datetime
    updated_at: datetime


class MessageView(BaseModel):
    """A message as its owner reads it; `content` is None when its key was shredded."""

    id: str
    turn_id: str
    role: str
    content: str | None
    model: str | None = None
    provider: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    findings: list[FindingSummary] = Field(default_factory=list)
    created_at: datetime


class ThreadView(ThreadSummary):
    messages: list[MessageView]


class ThreadRename(BaseModel):
    id: str
    title: str = Field(min_length=1, max_length=300)


class ChatTurnFinal(GenerateChunk):
    """The last chunk of a `chat.turn`: the generic final chunk plus where the turn was stored."""

    turn_id: str | None = None
    thread_id: str | None = None
    message_id: str | None = None


class TurnRecord(TurnStored):
    """`chat.turn.completed` as the chat service writes it: TurnStored plus message ids and metadata (no clear text)."""

    user_message_id: str | None = None
    answer_message_id: str | None = None
    title_ciphertext: str | None = None
    findings: list[FindingSummary] = Field(default_factory=list)
    department: str | None = None


# -- feedback -------------------------------------------------------------------------------


class FeedbackRequest(BaseModel):
    message_id: str
    thumbs: Literal["up", "down"] | None = None
    stars: int | None = Field(default=None, ge=1, le=5)
    labels: list[str] = Field(default_factory=list, max_length=20)
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackView(BaseModel):
    message_id: str
    thumbs: Literal["up", "down"] | None
    stars: int | None
    labels: list[str]
    comment: str | None
    updated_at: datetime


class FeedbackPositive(BaseModel):
    """A positively rated answer that should enter the dataset quarantine (ids only)."""

    message_id: str
    owner_id: str


# -- prompt library -------------------------------------------------------------------------


class PromptFields(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20000)


class PromptView(BaseModel):
    """A user's own saved prompt (stored encrypted)."""

    id: str
    title: str | None
    body: str | None
    variables: list[str]
    created_at: datetime


class LibraryPrompt(BaseModel):
    """A redacted prompt of a department library (stored in clear for full-text search)."""

    id: str
    department: str | None
    title: str
    body: str
    variables: list[str]
    status: Literal["candidate", "published", "rejected"]
    usage_count: int
    rating_avg: float | None
    rating_count: int
    rank: float | None = None
    created_at: datetime


class LibrarySearch(PageRequest):
    query: str | None = Field(default=None, max_length=500)


class LibraryUse(BaseModel):
    id: str
    values: dict[str, str] = Field(default_factory=dict)


class LibraryUsed(BaseModel):
    id: str
    text: str
    missing: list[str]


class LibraryRate(BaseModel):
    id: str
    stars: int = Field(ge=1, le=5)


class ReviewDecision(BaseModel):
    """A steward's decision on a library candidate or dataset item."""

    id: str
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=2000)


# -- datasets -------------------------------------------------------------------------------

DatasetStatus = Literal["quarantine", "approved", "rejected"]


class DatasetItemsRequest(PageRequest):
    status: DatasetStatus = "quarantine"


class DatasetItem(BaseModel):
    """A redacted exchange under review; the text never holds the PII values, only placeholders."""

    id: str
    department: str | None
    assistant_id: str | None
    prompt: str | None
    answer: str | None
    system_prompt: str | None = None
    findings: list[FindingSummary] = Field(default_factory=list)
    status: DatasetStatus
    reason: str | None
    reviewed_at: datetime | None
    created_at: datetime


class DatasetExportRequest(BaseModel):
    format: Literal["openai", "qa"] = "openai"
    assistant_id: str | None = None


class DatasetExport(BaseModel):
    format: str
    count: int
    jsonl: str
