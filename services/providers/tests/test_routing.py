"""Routing: aliases per scope, escalation rules, fallback chains."""

import pytest

from schleuse_providers.domain import routing as r
from schleuse_providers.domain.errors import ContextTooLong, UnknownModel
from schleuse_providers.domain.routing import RouteRequest, route

from .catalogue import AliasTargets, catalogue


def _route(requested="default", prompt=100, **kw):
    cat = kw.pop("cat", None) or catalogue()
    return route(cat, RouteRequest(requested=requested, prompt_tokens=prompt, **kw))


def test_default_goes_to_the_small_model_with_its_fallbacks():
    decision = _route()
    assert (decision.model.id, decision.reason) == ("small", r.REASON_DEFAULT)
    assert [m.id for m in decision.chain] == ["small", "spare"]


def test_large_without_permission_stays_small_and_says_why():
    decision = _route("large")
    assert (decision.model.id, decision.reason) == ("small", r.REASON_DENIED)


def test_large_with_permission_escalates():
    decision = _route("large", allow_escalation=True)
    assert (decision.model.id, decision.reason) == ("large", r.REASON_ASKED)


def test_naming_the_large_model_counts_as_asking_for_escalation():
    assert _route("large").model.id == "small"
    assert _route("large", allow_escalation=True).model.id == "large"


def test_prompt_beyond_small_context_escalates_even_without_permission():
    decision = _route("default", prompt=900, max_tokens=200)
    assert (decision.model.id, decision.reason) == ("large", r.REASON_CONTEXT)


def test_assistant_marked_as_needing_large_gets_it():
    cat = catalogue(assistants={"a1": AliasTargets(requires_large=True)})
    decision = _route(cat=cat, assistant_id="a1")
    assert (decision.model.id, decision.reason) == ("large", r.REASON_ASSISTANT)


def test_department_and_assistant_overrides_with_assistant_winning():
    cat = catalogue(
        departments={"hr": AliasTargets(default="spare")},
        assistants={"a1": AliasTargets(default="large")},
    )
    assert _route(cat=cat, department="hr").model.id == "spare"
    assert _route(cat=cat, department="hr", assistant_id="a1").model.id == "large"
    assert _route(cat=cat, department="it").model.id == "small"


def test_assistant_policy_can_allow_escalation():
    cat = catalogue(assistants={"a1": AliasTargets(allow_escalation=True)})
    assert _route("large", cat=cat, assistant_id="a1").model.id == "large"
    cat = catalogue(assistants={"a1": AliasTargets(allow_escalation=False)})
    assert _route("large", cat=cat, assistant_id="a1", allow_escalation=True).model.id == "small"


def test_explicit_catalogue_model_and_unknown_model():
    decision = _route("spare")
    assert (decision.model.id, decision.reason) == ("spare", r.REASON_EXPLICIT)
    with pytest.raises(UnknownModel):
        _route("gpt-9")


def test_prompt_too_long_for_everything():
    with pytest.raises(ContextTooLong):
        _route(prompt=200_000)


def test_fallbacks_that_cannot_hold_the_prompt_are_dropped():
    cat = catalogue(fallbacks={"large": ("small", "spare")})
    decision = _route(cat=cat, prompt=5000)
    assert [m.id for m in decision.chain] == ["large", "spare"]
