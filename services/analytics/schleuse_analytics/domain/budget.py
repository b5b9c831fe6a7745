"""Budgets that really stop spending: reserve the estimated cost before a call, settle the real cost after.

The check-and-reserve is one Redis Lua script, so replicas racing for the last euro cannot overspend:
Redis runs scripts one at a time. Money is kept in integer micro-units (1e-6 of the currency).
Several budgets (e.g. the department's and the assistant's) are reserved together or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal, Protocol

MICROS = Decimal(1_000_000)
Level = Literal["ok", "soft", "hard"]
NO_LIMIT = -1


def to_micros(amount: Decimal | float | str) -> int:
    """Money to integer micro-units, rounded up so estimates never undercount."""
    return int((Decimal(str(amount)) * MICROS).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) / MICROS


def month_period(now: datetime | None = None) -> str:
    """The monthly budget period a moment falls in, `YYYY-MM` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The first moment of a `YYYY-MM` period and of the next one (UTC)."""
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class Budget:
    """A monthly budget of one scope (`department` or `assistant`), with optional soft and hard limits."""

    scope: Literal["department", "assistant"]
    scope_id: str
    currency: str = "EUR"
    soft_limit: Decimal | None = None
    hard_limit: Decimal | None = None

    @property
    def name(self) -> str:
        return f"{self.scope}:{self.scope_id}"

    def key(self, prefix: str, period: str) -> str:
        return f"{prefix}{{{self.name}:{period}}}"  # hash tag keeps ledger and reservations on one slot


@dataclass(frozen=True)
class BudgetState:
    """One budget after a reservation attempt: what is spent, what is held, how close to the limits."""

    budget: Budget
    period: str
    spent: Decimal
    reserved: Decimal
    level: Level

    @property
    def committed(self) -> Decimal:
        return self.spent + self.reserved

    @property
    def remaining(self) -> Decimal | None:
        if self.budget.hard_limit is None:
            return None
        return max(Decimal(0), self.budget.hard_limit - self.committed)


@dataclass(frozen=True)
class Reservation:
    """The outcome of `reserve`: allowed or refused (and by which budget), and each budget's state."""

    reservation_id: str
    period: str
    amount: Decimal
    allowed: bool
    states: tuple[BudgetState, ...]
    blocked_by: Budget | None = None

    @property
    def level(self) -> Level:
        """`hard` when refused, `soft` when any soft limit is passed (allowed, emit policy.event), else `ok`."""
        if not self.allowed:
            return "hard"
        return "soft" if any(s.level == "soft" for s in self.states) else "ok"

    @property
    def soft_exceeded(self) -> tuple[Budget, ...]:
        return tuple(s.budget for s in self.states if s.level == "soft")


def level_for(budget: Budget, committed_micros: int) -> Level:
    """Pure decision for one budget given what would be committed (spent + reserved + this call)."""
    if budget.hard_limit is not None and committed_micros > to_micros(budget.hard_limit):
        return "hard"
    if budget.soft_limit is not None and committed_micros > to_micros(budget.soft_limit):
        return "soft"
    return "ok"


class ScriptRedis(Protocol):
    """The one Redis call the ledger needs (redis.asyncio.Redis satisfies it)."""

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]: ...


# KEYS: per budget i: ledger hash (spent, reserved), reservations hash (id -> "micros:expires_at").
# ARGV: amount, reservation id, ttl seconds, then per budget: hard micros, soft micros (-1 = none).
# Returns: allowed (1/0), index of the refusing budget (0 = none), then per budget spent, reserved, level;
# {2, 0} when the reservation id exists, {3, i} when budget i's ledger must be seeded first.
RESERVE_LUA = """
local amount = tonumber(ARGV[1])
local rid = ARGV[2]
local ttl = tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local n = #KEYS / 2
local spent, reserved = {}, {}
-- a ledger without its `seeded` mark was lost (Redis restarted): the caller rebuilds it from Postgres first
for i = 1, n do
  if redis.call('HEXISTS', KEYS[2 * i - 1], 'seeded') == 0 then
    return {3, i}
  end
end
for i = 1, n do
  local ledger, holds = KEYS[2 * i - 1], KEYS[2 * i]
  -- reservations of crashed callers expire instead of holding budget forever
  local entries = redis.call('HGETALL', holds)
  for j = 1, #entries, 2 do
    local sep = string.find(entries[j + 1], ':')
    local micros = tonumber(string.sub(entries[j + 1], 1, sep - 1))
    local expires = tonumber(string.sub(entries[j + 1], sep + 1))
    if expires <= now then
      redis.call('HDEL', holds, entries[j])
      redis.call('HINCRBY', ledger, 'reserved', -micros)
    end
  end
  if redis.call('HEXISTS', holds, rid) == 1 then
    return {2, 0}
  end
  spent[i] = tonumber(redis.call('HGET', ledger, 'spent') or '0')
  reserved[i] = tonumber(redis.call('HGET', ledger, 'reserved') or '0')
end
for i = 1, n do
  local hard = tonumber(ARGV[3 + 2 * i - 1])
  if hard >= 0 and spent[i] + reserved[i] + amount > hard then
    local out = {0, i}
    for k = 1, n do
      table.insert(out, spent[k]); table.insert(out, reserved[k]); table.insert(out, k == i and 'hard' or 'ok')
    end
    return out
  end
end
local out = {1, 0}
for i = 1, n do
  local ledger, holds = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', ledger, 'reserved', amount)
  redis.call('HSET', holds, rid, amount .. ':' .. (now + ttl))
  redis.call('EXPIRE', ledger, 3024000)
  redis.call('EXPIRE', holds, 3024000)
  local soft = tonumber(ARGV[3 + 2 * i])
  local level = 'ok'
  if soft >= 0 and spent[i] + reserved[i] + amount > soft then level = 'soft' end
  table.insert(out, spent[i]); table.insert(out, reserved[i] + amount); table.insert(out, level)
end
return out
"""

# KEYS: per budget i: ledger, reservations; then one marker key per reservation (settled once).
# ARGV: reservation id, actual micros. A reservation that expired is still charged its real cost.
SETTLE_LUA = """
local rid = ARGV[1]
local actual = tonumber(ARGV[2])
local n = (#KEYS - 1) / 2
if redis.call('SET', KEYS[#KEYS], '1', 'NX', 'EX', 172800) == false then
  return 0
end
for i = 1, n do
  local ledger, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local entry = redis.call('HGET', holds, rid)
  if entry then
    local sep = string.find(entry, ':')
    redis.call('HINCRBY', ledger, 'reserved', -tonumber(string.sub(entry, 1, sep - 1)))
    redis.call('HDEL', holds, rid)
  end
  redis.call('HINCRBY', ledger, 'spent', actual)
  redis.call('EXPIRE', ledger, 3024000)
end
return 1
"""


SpentSource = Callable[[Budget, str], Awaitable[Decimal]]

SEED_LUA = """
if redis.call('HEXISTS', KEYS[1], 'seeded') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'seeded', '1')
redis.call('EXPIRE', KEYS[1], 3024000)
return 1
"""


async def _nothing_spent(budget: Budget, period: str) -> Decimal:
    return Decimal(0)


class BudgetLedger:
    """Reserve/settle/release against Redis; safe across any number of replicas.

    `spent_source` answers what a budget has spent in a period when Redis has no ledger for it (first use,
    or Redis lost its data); analytics sums its usage events for that.
    """

    def __init__(
        self,
        redis: ScriptRedis,
        prefix: str = "schleuse:budget:",
        hold_seconds: int = 900,
        spent_source: SpentSource | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.hold_seconds = hold_seconds
        self.spent_source = spent_source or _nothing_spent

    def _keys(self, budgets: Sequence[Budget], period: str) -> list[str]:
        keys: list[str] = []
        for budget in budgets:
            base = budget.key(self.prefix, period)
            keys += [f"{base}:ledger", f"{base}:holds"]
        return keys

    async def reserve(
        self,
        budgets: Sequence[Budget],
        amount: Decimal | float,
        reservation_id: str,
        period: str | None = None,
    ) -> Reservation:
        """Hold `amount` on every budget at once, or on none if a hard limit would be passed."""
        period = period or month_period()
        micros = to_micros(amount)
        if not budgets:
            return Reservation(reservation_id, period, from_micros(micros), True, ())
        args: list[Any] = [micros, reservation_id, self.hold_seconds]
        for budget in budgets:
            args += [_limit(budget.hard_limit), _limit(budget.soft_limit)]
        keys = self._keys(budgets, period)
        raw = await self.redis.eval(RESERVE_LUA, len(keys), *keys, *args)
        for _ in budgets:  # at most one seeding per budget, then the reservation goes through
            if int(raw[0]) != 3:
                break
            budget = budgets[int(raw[1]) - 1]
            await self.seed_spent(budget, period, await self.spent_source(budget, period))
            raw = await self.redis.eval(RESERVE_LUA, len(keys), *keys, *args)
        if int(raw[0]) == 3:
            raise RuntimeError("budget ledger could not be seeded")
        if int(raw[0]) == 2:
            raise ValueError(f"reservation {reservation_id} exists already")
        states = tuple(
            BudgetState(
                budget=budget,
                period=period,
                spent=from_micros(int(raw[2 + 3 * i])),
                reserved=from_micros(int(raw[3 + 3 * i])),
                level=_text(raw[4 + 3 * i]),  # type: ignore[arg-type]
            )
            for i, budget in enumerate(budgets)
        )
        blocked = int(raw[1])
        return Reservation(
            reservation_id=reservation_id,
            period=period,
            amount=from_micros(micros),
            allowed=int(raw[0]) == 1,
            states=states,
            blocked_by=budgets[blocked - 1] if blocked else None,
        )

    async def settle(
        self, budgets: Sequence[Budget], reservation_id: str, actual: Decimal | float, period: str
    ) -> bool:
        """Replace the hold with the real cost; idempotent (a second settle of the same id does nothing)."""
        if not budgets:
            return False
        keys = [*self._keys(budgets, period), f"{self.prefix}settled:{reservation_id}"]
        done = await self.redis.eval(SETTLE_LUA, len(keys), *keys, reservation_id, to_micros(actual))
        return int(done) == 1

    async def release(self, budgets: Sequence[Budget], reservation_id: str, period: str) -> bool:
        """The call did not happen or cost nothing: drop the hold."""
        return await self.settle(budgets, reservation_id, 0, period)

    async def ensure_seeded(self, budget: Budget, period: str) -> None:
        """Seed the ledger from `spent_source` unless Redis has it (for read paths such as the admin list)."""
        base = budget.key(self.prefix, period)
        present = await self.redis.eval("return redis.call('HEXISTS', KEYS[1], 'seeded')", 1, f"{base}:ledger")
        if int(present) == 0:
            await self.seed_spent(budget, period, await self.spent_source(budget, period))

    async def state(self, budget: Budget, period: str | None = None) -> BudgetState:
        """Current spent and reserved amounts (read only; a reservation of zero)."""
        period = period or month_period()
        base = budget.key(self.prefix, period)
        raw = await self.redis.eval(
            "return {redis.call('HGET', KEYS[1], 'spent') or '0', redis.call('HGET', KEYS[1], 'reserved') or '0'}",
            1,
            f"{base}:ledger",
        )
        spent, reserved = int(raw[0]), int(raw[1])
        return BudgetState(
            budget, period, from_micros(spent), from_micros(reserved), level_for(budget, spent + reserved)
        )

    async def seed_spent(self, budget: Budget, period: str, spent: Decimal) -> bool:
        """Start a ledger (first use, or after Redis lost its data) from the spend analytics has in Postgres.

        Only an unseeded ledger is set (concurrent seeders agree); it replaces anything settled on a lost ledger,
        which the usage events count as well.
        """
        base = budget.key(self.prefix, period)
        created = await self.redis.eval(SEED_LUA, 1, f"{base}:ledger", to_micros(spent))
        return int(created) == 1


def _limit(value: Decimal | None) -> int:
    return NO_LIMIT if value is None else to_micros(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def applicable(
    budgets: Mapping[tuple[str, str], Budget], department: str | None, assistant_id: str | None, currency: str
) -> tuple[Budget, ...]:
    """The budgets a call is charged to: its department's and its assistant's, in the call's currency.

    Budgets in another currency are not charged (no exchange rates here); admins keep one currency per scope.
    """
    found = (
        budgets.get(("department", department)) if department else None,
        budgets.get(("assistant", assistant_id)) if assistant_id else None,
    )
    return tuple(b for b in found if b is not None and b.currency == currency)


def refusal_message(state: BudgetState, amount: Decimal) -> str:
    """Why a call was refused, naming the budget (shown to the caller; numbers only, no content)."""
    budget = state.budget
    limit = budget.hard_limit if budget.hard_limit is not None else Decimal(0)
    _, resets = period_bounds(state.period)
    return (
        f"The monthly budget of {budget.scope} '{budget.scope_id}' is exhausted: "
        f"{_money(state.committed)} of {_money(limit)} {budget.currency} used in {state.period}, "
        f"this request may cost up to {_money(amount)} {budget.currency}. "
        f"It resets on {resets.date().isoformat()}; ask an administrator to raise the limit."
    )


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_CEILING)}"
