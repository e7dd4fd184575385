"""The HeldStore contract (server/store/contract.py), on SQLite and PostgreSQL: what is
written outside the hours waits for the opening, and each due item goes to exactly one
node (a claim older than a minute is taken over: its node died)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from server.broadcasts import Draft, Kind
from server.gatekeeper import BroadcastTarget
from server.model import Role, SchoolId
from server.store import Store
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, E2, HUGO, MOULIN, T1, at

pytestmark = pytest.mark.anyio

EVENING, MORNING = at(600), at(1320)  # 20:00 and 08:00 the next day, Paris


class TestHold:
    async def test_a_held_start_and_a_held_reply(self, schools: Store):
        start, new = await schools.hold(HUGO, E1, "h1", "Bonsoir", discussion_id=None,
                                        subject="Devoirs", recipients=[T1, E2], now=EVENING,
                                        release_at=MORNING)
        assert new
        assert (start.school_id, start.sender, start.client_id, start.discussion_id,
                start.subject, start.recipients, start.body, start.created_at,
                start.release_at) == (HUGO, E1, "h1", None, "Devoirs", (T1, E2), "Bonsoir",
                                      EVENING, MORNING)
        d = await schools.create_discussion(HUGO, T1, "S", [E1], now=at(0))
        reply, new = await schools.hold(HUGO, E1, "h2", "Merci", discussion_id=d.id,
                                        subject=None, recipients=[], now=EVENING,
                                        release_at=MORNING)
        assert new
        assert (reply.discussion_id, reply.subject, reply.recipients) == (d.id, None, ())
        assert reply.id != start.id

    async def test_holding_again_is_the_same_item(self, schools: Store):
        first, _ = await schools.hold(HUGO, E1, "h1", "Bonsoir", discussion_id=None,
                                      subject="S", recipients=[T1], now=EVENING,
                                      release_at=MORNING)
        again, new = await schools.hold(HUGO, E1, "h1", "autre texte", discussion_id=None,
                                        subject="S", recipients=[T1],
                                        now=EVENING + timedelta(minutes=1),
                                        release_at=MORNING)
        assert not new
        assert again == first
        elsewhere, new = await schools.hold(MOULIN, E1, "h1", "Bonsoir", discussion_id=None,
                                            subject="S", recipients=[T1], now=EVENING,
                                            release_at=MORNING)
        assert new
        assert elsewhere.id != first.id


class TestClaim:
    async def test_only_due_items_in_order_and_each_once(self, schools: Store):
        ids = []
        for i, release in enumerate([at(10), at(20), at(20.5)]):
            held, _ = await schools.hold(HUGO, E1, f"h{i}", f"m{i}", discussion_id=None,
                                         subject="S", recipients=[T1], now=at(0),
                                         release_at=release)
            ids.append(held.id)
        assert await schools.claim_due(at(5)) == []
        claimed = await schools.claim_due(at(20))
        assert [h.id for h in claimed] == ids[:2]
        assert [h.body for h in claimed] == ["m0", "m1"]
        assert await schools.claim_due(at(20.25)) == []  # claimed: not again
        # Within the minute, only the newly due one.
        assert [h.id for h in await schools.claim_due(at(20.5), limit=5)] == [ids[2]]

    async def test_claims_serve_every_school(self, schools: Store):
        ours, _ = await schools.hold(HUGO, E1, "h1", "m", discussion_id=None, subject="S",
                                     recipients=[T1], now=at(0), release_at=at(10))
        theirs, _ = await schools.hold(MOULIN, E1, "h1", "m", discussion_id=None,
                                       subject="S", recipients=[T1], now=at(0),
                                       release_at=at(10))
        claimed = await schools.claim_due(at(10))
        assert [(h.id, h.school_id) for h in claimed] == [(ours.id, HUGO),
                                                           (theirs.id, MOULIN)]
        assert sorted(await schools.schools_holding(at(0))) == [HUGO, MOULIN]

    async def test_a_claim_older_than_a_minute_is_taken_over(self, schools: Store):
        held, _ = await schools.hold(HUGO, E1, "h1", "m", discussion_id=None, subject="S",
                                     recipients=[T1], now=at(0), release_at=at(10))
        assert [h.id for h in await schools.claim_due(at(10))] == [held.id]
        assert await schools.claim_due(at(10.5)) == []  # its node is still at work
        # That node died: another one takes it over.
        assert [h.id for h in await schools.claim_due(at(11.5))] == [held.id]

    async def test_limit(self, schools: Store):
        for i in range(5):
            await schools.hold(HUGO, E1, f"h{i}", "m", discussion_id=None, subject="S",
                               recipients=[T1], now=at(0), release_at=at(1))
        first = await schools.claim_due(at(1), limit=3)
        rest = await schools.claim_due(at(1), limit=3)
        assert (len(first), len(rest)) == (3, 2)
        assert not {h.id for h in first} & {h.id for h in rest}

    async def test_several_processes_claim_each_item_exactly_once(
            self, schools: Store, store_url: str, tmp_path: Path):
        ids = set()
        for i in range(120):
            held, _ = await schools.hold(HUGO if i % 2 else MOULIN, E1, f"h{i}", f"m{i}",
                                         discussion_id=None, subject="S", recipients=[T1],
                                         now=at(0), release_at=at(1))
            ids.add(held.id)
        job = {"do": "claim_held", "url": store_url, "school": HUGO,
               "now": at(2).isoformat(), "rounds": 10, "limit": 7}
        answers = await run_workers([job] * 4, tmp_path / "go")
        claims = Counter(i for answer in answers for i in answer)
        assert set(claims) == ids
        assert max(claims.values()) == 1


class TestRelease:
    async def test_release_removes_or_postpones(self, schools: Store):
        done, _ = await schools.hold(HUGO, E1, "h1", "m", discussion_id=None, subject="S",
                                     recipients=[T1], now=at(0), release_at=at(10))
        closed, _ = await schools.hold(HUGO, E1, "h2", "m", discussion_id=None, subject="S",
                                       recipients=[T1], now=at(0), release_at=at(10))
        assert len(await schools.claim_due(at(10))) == 2
        await schools.release_held(done.id)
        await schools.release_held(closed.id, later=at(100))  # closed again: wait
        # Neither comes back when the claims go stale; the postponed one at its time.
        assert await schools.claim_due(at(20)) == []
        [back] = await schools.claim_due(at(100))
        assert (back.id, back.release_at) == (closed.id, at(100))
        await schools.release_held(closed.id)
        assert await schools.claim_due(at(200)) == []
        # Holding the same client id again after release is a new item.
        _, new = await schools.hold(HUGO, E1, "h1", "m", discussion_id=None, subject="S",
                                    recipients=[T1], now=at(300), release_at=at(310))
        assert new


class TestOpening:
    async def test_schools_holding_and_release_for_opening(self, schools: Store):
        assert await schools.schools_holding(at(0)) == []
        held, _ = await schools.hold(HUGO, E1, "h1", "m", discussion_id=None, subject="S",
                                     recipients=[T1], now=EVENING, release_at=MORNING)
        assert await schools.schools_holding(EVENING) == [HUGO]
        assert await schools.schools_holding(MORNING) == []  # due then: claimed, not held
        # The school opens early (its hours changed): everything held is due now.
        opening = EVENING + timedelta(hours=1)
        await schools.release_for_opening(HUGO, opening)
        assert await schools.schools_holding(opening) == []
        [due] = await schools.claim_due(opening)
        assert (due.id, due.release_at) == (held.id, opening)

    async def test_broadcasts_held_for_the_hours_are_released_too(self, schools: Store):
        def draft(client_id: str) -> Draft:
            return Draft(Kind.INFORMATION, client_id, "Sortie", "Demain",
                         BroadcastTarget(roles=frozenset({Role.STUDENT})))

        held, _ = await schools.create_broadcast(HUGO, T1, draft("b1"), now=EVENING,
                                                 publish_at=MORNING, deadline=None,
                                                 recipients=None, held_for_hours=True)
        chosen, _ = await schools.create_broadcast(HUGO, T1, draft("b2"), now=EVENING,
                                                   publish_at=MORNING, deadline=None,
                                                   recipients=None)
        assert await schools.schools_holding(EVENING) == [HUGO]
        assert await schools.schools_holding(EVENING) == [HUGO]  # asking changes nothing
        opening = EVENING + timedelta(hours=1)
        await schools.release_for_opening(HUGO, opening)
        assert (await schools.get_broadcast(HUGO, held.id)).publish_at == opening
        assert (await schools.get_broadcast(HUGO, chosen.id)).publish_at == MORNING
        assert await schools.schools_holding(opening) == []
        assert [b.id for b in await schools.claim_due_broadcasts(opening)] == [held.id]
        await schools.release_for_opening(SchoolId("moulin"), opening)  # nothing held there


class TestAcrossNodes:
    async def test_one_item_per_client_id_when_several_processes_hold_it(
            self, schools: Store, store_url: str, tmp_path: Path):
        ids = [f"h{i}" for i in range(30)]
        job = {"do": "hold", "url": store_url, "school": HUGO, "now": EVENING.isoformat(),
               "sender": E1, "client_ids": ids, "release_at": MORNING.isoformat()}
        answers = await run_workers([job] * 3, tmp_path / "go")
        for i in range(len(ids)):
            told = [answer[i] for answer in answers]
            assert len({h for _, h, _ in told}) == 1
            assert sum(new for _, _, new in told) == 1
        claimed = await schools.claim_due(MORNING)
        assert sorted(h.client_id for h in claimed) == sorted(ids)
        assert len(await schools.recent_starts(HUGO, E1, since=at(0), limit=100)) == 30
