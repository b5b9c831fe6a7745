"""How long calls are kept: one cutoff for queries, the purge and the daily files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from schleuse_ingest.domain.tailing import file_day

BERLIN = ZoneInfo("Europe/Berlin")
MIN_TOPIC_GROUP = 5
OTHER_TOPIC = "(andere)"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Calls, their history, notes, audit, dead letters and JSONL files live `days` days."""

    days: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 3650:
            raise ValueError("retention days must be between 1 and 3650")

    def cutoff(self, now: datetime) -> datetime:
        """Anything received before this instant is expired and never returned."""
        return now - timedelta(days=self.days)

    def file_expired(self, name: str, now: datetime) -> bool:
        """True when a daily file's whole (Berlin) day lies before the cutoff."""
        day = file_day(name)
        if day is None:
            return False
        end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
        return end_of_day <= self.cutoff(now)


def topic_group(topic_counts: dict[str, int]) -> dict[str, int]:
    """Aggregate topics so none is kept that fewer than MIN_TOPIC_GROUP calls share (k-anonymity)."""
    grouped: dict[str, int] = {}
    for topic, count in topic_counts.items():
        key = topic if count >= MIN_TOPIC_GROUP else OTHER_TOPIC
        grouped[key] = grouped.get(key, 0) + count
    return grouped


def day_of(moment: datetime) -> date:
    """The Berlin calendar day of a moment, as aggregates are kept per local day."""
    return moment.astimezone(BERLIN).date()
