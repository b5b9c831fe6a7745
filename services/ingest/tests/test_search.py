"""Text search takes different paths by how common the words are; every path gives the same pages and totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schleuse_common.db import Database
from schleuse_ingest import store
from schleuse_ingest.domain.events import normalise
from schleuse_ingest.domain.query import Sort, resolve
from schleuse_ingest.keys import CallKeyring

from .helpers import NOW, event

N = 60


@pytest.fixture
async def many_calls(db: Database, keyring: CallKeyring) -> None:
    calls = []
    for n in range(N):
        topic = "Rezept abholen" if n % 2 else "Frage zur Rechnung"  # common word: every other call
        name = "Erika Seltenreich" if n % 20 == 3 else f"Hans Muster{n}"  # rare name: 3 calls
        at = (NOW - timedelta(minutes=n)).isoformat()
        calls.append(normalise(event(n, received_at=at, topic=topic, caller_name=name), default_source="test"))
    async with db.session() as s:
        await store.write_batch(s, keyring, calls=calls, rejected=[])


async def pages(db: Database, q: str, sort: Sort, limit: int) -> tuple[list[str], int | None, bool]:
    now = datetime.now(UTC)
    filters = resolve(cutoff=now - timedelta(days=30), now=now, actor_id="a", q=q)
    seen: list[str] = []
    cursor = None
    total, exact = None, True
    while True:
        async with db.session() as s:
            rows, cursor, page_total, page_exact = await store.list_calls(
                s, filters, sort=sort, cursor=cursor, limit=limit, with_total=not seen
            )
        if not seen:
            total, exact = page_total, page_exact
        seen += [r.event_id for r in rows]
        if cursor is None:
            return seen, total, exact


def expected(q: str) -> list[str]:
    ns = [n for n in range(N) if (n % 2 if q == "rezept" else n % 20 == 3)]
    return [f"evt-{n}" for n in ns]  # newest first: smaller n is newer


@pytest.mark.parametrize(("page_window", "max_window", "count_window"), [(4, 8, 6), (4, 40, 100), (1000, 1000, 1000)])
@pytest.mark.parametrize("q", ["rezept", "seltenreich"])
async def test_every_search_path_gives_the_same_pages_and_totals(
    many_calls: None,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    q: str,
    page_window: int,
    max_window: int,
    count_window: int,
) -> None:
    monkeypatch.setattr(store, "PAGE_WINDOW", page_window)
    monkeypatch.setattr(store, "MAX_WINDOW", max_window)
    monkeypatch.setattr(store, "COUNT_WINDOW", count_window)
    monkeypatch.setattr(store, "TOTAL_CAP", 20)
    want = expected(q)
    for limit in (2, 5):
        seen, total, exact = await pages(db, q, Sort.NEWEST, limit)
        assert seen == want
        assert (total, exact) == ((20, False) if len(want) > 20 else (len(want), True))
    oldest, _, _ = await pages(db, q, Sort.OLDEST, 4)
    assert oldest == want[::-1]
