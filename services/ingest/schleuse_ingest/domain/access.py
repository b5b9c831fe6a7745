"""Who may do what with calls, and how personal data is masked for those who may not see it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

MASK = "*"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Role sets per right; configurable in settings, defaults follow the issue (agent reads and changes)."""

    read_roles: frozenset[str] = frozenset({"agent", "admin", "dpo"})
    change_roles: frozenset[str] = frozenset({"agent", "admin"})
    pii_roles: frozenset[str] = frozenset({"agent", "admin"})
    admin_roles: frozenset[str] = frozenset({"admin"})
    rights_roles: frozenset[str] = frozenset({"admin", "dpo"})

    def can_read(self, roles: Iterable[str]) -> bool:
        """May list and open calls."""
        return not self.read_roles.isdisjoint(roles)

    def can_change(self, roles: Iterable[str]) -> bool:
        """May change status, assign and write notes."""
        return not self.change_roles.isdisjoint(roles)

    def sees_pii(self, roles: Iterable[str]) -> bool:
        """May see number and date of birth unmasked (each such view is audited)."""
        return not self.pii_roles.isdisjoint(roles)

    def can_administer(self, roles: Iterable[str]) -> bool:
        """May see statistics, configure retention and run the purge."""
        return not self.admin_roles.isdisjoint(roles)

    def can_exercise_rights(self, roles: Iterable[str]) -> bool:
        """May export and delete a caller's or a call's data (data-subject requests)."""
        return not self.rights_roles.isdisjoint(roles)


def mask_number(number: str) -> str:
    """Keep country code with the first digits and the last two: `+49151*****89`."""
    if len(number) <= 7:
        return MASK * len(number)
    return number[:6] + MASK * (len(number) - 8) + number[-2:]


def mask_birth_date(_: date | None) -> str | None:
    """A masked date of birth shows only that there is one."""
    return None if _ is None else "****-**-**"
