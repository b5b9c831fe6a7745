"""A call and what staff do with it: status changes with optimistic versions, assignment, notes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    NEW = "NEW"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class CallError(Exception):
    """Base of the call domain's errors; `code` is stable and safe to show."""

    code = "call_error"


class CallNotFound(CallError):
    code = "not_found"


class StaleVersion(CallError):
    """The caller changed a call based on an old version; they must reload."""

    code = "stale_version"

    def __init__(self, current_version: int) -> None:
        super().__init__(f"call is at version {current_version}")
        self.current_version = current_version


class Forbidden(CallError):
    code = "forbidden"


class InvalidRequest(CallError):
    code = "invalid_request"


MAX_NOTE = 10_000
MAX_ASSIGNEE = 128


@dataclass(frozen=True, slots=True)
class CallState:
    """The mutable part of a call that status and assignment rules look at."""

    id: int
    status: Status
    assignee: str | None
    version: int


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a command: the new state and the field diff for the audit (ids only, no PII)."""

    state: CallState
    diff: dict[str, dict[str, str | None]]

    @property
    def changed(self) -> bool:
        """False for an idempotent no-op."""
        return bool(self.diff)


def change_status(state: CallState, to: Status, expected_version: int | None) -> Change:
    """Move a call to `to`; DONE on a DONE call is a no-op whatever the version, else versions must match."""
    if to == Status.DONE and state.status == Status.DONE:
        return Change(state, {})
    _check_version(state, expected_version)
    if state.status == to:
        return Change(state, {})
    new = CallState(state.id, to, state.assignee, state.version + 1)
    return Change(new, {"status": {"from": state.status.value, "to": to.value}})


def assign(state: CallState, assignee: str | None, expected_version: int | None) -> Change:
    """Give a call to `assignee` (None unassigns); assigning a NEW call starts its work."""
    if assignee is not None:
        assignee = assignee.strip()
        if not assignee or len(assignee) > MAX_ASSIGNEE:
            raise InvalidRequest("assignee must be 1-128 characters")
    if state.assignee == assignee:
        return Change(state, {})
    _check_version(state, expected_version)
    diff: dict[str, dict[str, str | None]] = {"assignee": {"from": state.assignee, "to": assignee}}
    status = state.status
    if assignee is not None and status == Status.NEW:
        status = Status.IN_PROGRESS
        diff["status"] = {"from": Status.NEW.value, "to": status.value}
    return Change(CallState(state.id, status, assignee, state.version + 1), diff)


def check_note(body: str) -> str:
    """A note's text, trimmed; empty or oversized notes are refused."""
    text = body.strip()
    if not text or len(text) > MAX_NOTE:
        raise InvalidRequest(f"note must be 1-{MAX_NOTE} characters")
    return text


def _check_version(state: CallState, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != state.version:
        raise StaleVersion(state.version)
