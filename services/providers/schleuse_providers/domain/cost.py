"""Cost of a call from the catalogue's prices (per 1M tokens in and out)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from schleuse_common.contracts.providers import Usage
from schleuse_providers.domain.model import ModelSpec

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.000001")


def cost_of(model: ModelSpec, prompt_tokens: int, completion_tokens: int) -> float:
    """Price of the tokens in the model's currency, rounded to a millionth."""
    value = (
        Decimal(prompt_tokens) * Decimal(str(model.input_per_1m))
        + Decimal(completion_tokens) * Decimal(str(model.output_per_1m))
    ) / _MILLION
    return float(value.quantize(_QUANTUM, rounding=ROUND_HALF_UP))


def cost_of_usage(model: ModelSpec, usage: Usage) -> float:
    return cost_of(model, usage.prompt_tokens, usage.completion_tokens)


def estimate_cost(model: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> float:
    """Upper estimate before the call (for budget reservations): prompt plus the most it may answer."""
    answer = max_tokens or model.max_output_tokens or min(4096, model.context_window // 4)
    return cost_of(model, prompt_tokens, answer)


def estimate_chain_cost(chain: Sequence[ModelSpec], prompt_tokens: int, max_tokens: int | None) -> float:
    """The most a call may cost on any model of its fallback chain (what a budget must hold)."""
    return max((estimate_cost(model, prompt_tokens, max_tokens) for model in chain), default=0.0)
