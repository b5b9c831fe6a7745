"""Which model answers: aliases per department and assistant, escalation rules, fallback chains."""

from __future__ import annotations

from dataclasses import dataclass

from schleuse_providers.domain.errors import ContextTooLong, ModelNotAllowed, UnknownModel
from schleuse_providers.domain.model import AliasTargets, Catalogue, ModelSpec, RoutingPolicy

DEFAULT, LARGE = "default", "large"

# Reasons recorded in the usage event.
REASON_DEFAULT = "default"
REASON_EXPLICIT = "explicit_model"
REASON_ASKED = "escalation_requested"
REASON_DENIED = "escalation_not_allowed"
REASON_CONTEXT = "context_exceeds_small_model"
REASON_ASSISTANT = "assistant_requires_large"


@dataclass(frozen=True)
class RouteRequest:
    """What routing needs to know about a call."""

    requested: str
    prompt_tokens: int
    max_tokens: int | None = None
    department: str | None = None
    assistant_id: str | None = None
    allow_escalation: bool = False


@dataclass(frozen=True)
class Route:
    """The decision: the model to try first, the fallbacks after it, and why."""

    requested: str
    model: ModelSpec
    reason: str
    fallbacks: tuple[ModelSpec, ...] = ()

    @property
    def chain(self) -> tuple[ModelSpec, ...]:
        return (self.model, *self.fallbacks)


@dataclass(frozen=True)
class _Scope:
    default: str
    large: str | None
    allow_escalation: bool
    requires_large: bool
    allowed: frozenset[str] | None = None

    def may_name(self, model_id: str) -> bool:
        """Whether the scope may ask for this catalogue model by id (its own aliases always)."""
        return self.allowed is None or model_id in self.allowed or model_id in (self.default, self.large)


def _scope(policy: RoutingPolicy, department: str | None, assistant_id: str | None, allow_escalation: bool) -> _Scope:
    layers: list[AliasTargets] = []
    if department and department in policy.departments:
        layers.append(policy.departments[department])
    if assistant_id and assistant_id in policy.assistants:
        layers.append(policy.assistants[assistant_id])
    default, large, allow, requires = policy.default, policy.large, allow_escalation, False
    allowed: frozenset[str] | None = None
    for layer in layers:  # the more specific scope wins
        default = layer.default or default
        large = layer.large or large
        allow = layer.allow_escalation if layer.allow_escalation is not None else allow
        requires = requires or layer.requires_large
        allowed = layer.models if layer.models is not None else allowed
    return _Scope(default, large, allow or requires, requires, allowed)


def allowed_models(catalogue: Catalogue, department: str | None, assistant_id: str | None = None) -> list[ModelSpec]:
    """The enabled catalogue models a department (and assistant) may name, in catalogue order."""
    scope = _scope(catalogue.routing, department, assistant_id, False)
    return [m for m in catalogue.models.values() if catalogue.usable(m.id) is not None and scope.may_name(m.id)]


def fits(model: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> bool:
    """Whether the prompt plus the requested answer length fits the model's context window."""
    return bool(prompt_tokens + (max_tokens or 0) <= model.context_window)


def route(catalogue: Catalogue, request: RouteRequest) -> Route:
    """Resolve an alias or model id to a model, apply escalation rules, attach fallbacks."""
    scope = _scope(catalogue.routing, request.department, request.assistant_id, request.allow_escalation)
    model, reason = _choose(catalogue, scope, request)
    if not fits(model, request.prompt_tokens, request.max_tokens):
        raise ContextTooLong(f"prompt of {request.prompt_tokens} tokens exceeds the context of every allowed model")
    fallbacks = tuple(
        candidate
        for fid in catalogue.routing.fallbacks.get(model.id, ())
        if (candidate := catalogue.usable(fid)) is not None
        and candidate.id != model.id
        and fits(candidate, request.prompt_tokens, request.max_tokens)
    )
    return Route(requested=request.requested, model=model, reason=reason, fallbacks=fallbacks)


def _choose(catalogue: Catalogue, scope: _Scope, request: RouteRequest) -> tuple[ModelSpec, str]:
    small = _require(catalogue, scope.default)
    large = catalogue.usable(scope.large) if scope.large else None
    requested = request.requested
    if requested not in (DEFAULT, LARGE):
        explicit = catalogue.usable(requested)
        if explicit is None:
            raise UnknownModel(f"unknown model {requested!r}")
        if not scope.may_name(explicit.id):
            raise ModelNotAllowed(f"model {requested!r} is not enabled for this department or assistant")
        if large is None or explicit.id != large.id:
            return explicit, REASON_EXPLICIT
        requested = LARGE  # naming the large model is asking for escalation
    if large is not None and scope.requires_large:
        return large, REASON_ASSISTANT
    if large is not None and requested == LARGE and scope.allow_escalation:
        return large, REASON_ASKED
    if large is not None and not fits(small, request.prompt_tokens, request.max_tokens):
        return large, REASON_CONTEXT
    if requested == LARGE:
        return small, REASON_DENIED
    return small, REASON_DEFAULT


def _require(catalogue: Catalogue, model_id: str) -> ModelSpec:
    model = catalogue.usable(model_id)
    if model is None:
        raise UnknownModel(f"routing names model {model_id!r}, which is not in the catalogue or disabled")
    return model
