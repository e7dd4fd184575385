"""The BroadcastStore contract (server/store/contract.py), on SQLite and PostgreSQL.

A broadcast is stored once per ``(author, client_id)``; a scheduled one is claimed by
one node, then published or dropped; every change to a recipient's row moves the
author's figures in the same transaction, so that they are exact at each version,
even when several processes answer at once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from server.broadcasts import Answer, Draft, Kind, Question, QuestionKind
from server.errors import NotFound
from server.gatekeeper import BroadcastTarget
from server.model import ClassId, Role, UserId
from server.store import Broadcast, Store
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, E2, E3, HUGO, MOULIN, P1, T1, T2, at

pytestmark = pytest.mark.anyio

STUDENTS = BroadcastTarget(roles=frozenset({Role.STUDENT}), classes=frozenset({ClassId("2A")}))
QUESTIONS = (
    Question("Quel jour ?", QuestionKind.SINGLE, ("lundi", "mardi", "jeudi")),
    Question("Quels ateliers ?", QuestionKind.MULTIPLE, ("chant", "dessin", "judo"), 2),
    Question("Remarques", QuestionKind.TEXT),
)


def information(client_id: str = "b1", *, ack: bool = False,
                expires_at: datetime | None = None) -> Draft:
    return Draft(Kind.INFORMATION, client_id, "Sortie au musée", "Départ à 8 h.", STUDENTS,
                 ack_requested=ack, expires_at=expires_at)


def poll(client_id: str = "p1", *, anonymous: bool = False) -> Draft:
    return Draft(Kind.POLL, client_id, "Réunion", "Votre choix", STUDENTS,
                 questions=QUESTIONS, anonymous=anonymous)


async def publish_now(store: Store, draft: Draft, recipients: list[UserId],
                      now: datetime | None = None) -> Broadcast:
    """``draft`` by t1, published to ``recipients`` at ``now`` (10:00 by default)."""
    now = now or at(0)
    b, new = await store.create_broadcast(HUGO, T1, draft, now=now, publish_at=now,
                                          deadline=at(60 * 24) if draft.questions else None,
                                          recipients=recipients)
    assert new
    return b


class TestCreate:
    async def test_published_at_once_to_its_recipients(self, schools: Store):
        b, new = await schools.create_broadcast(HUGO, T1, information(ack=True), now=at(1),
                                                publish_at=at(1), deadline=None,
                                                recipients=[E1, E2])
        assert new
        assert (b.school_id, b.author, b.client_id, b.kind, b.title, b.body, b.target,
                b.ack_requested, b.questions, b.anonymous) == (
            HUGO, T1, "b1", Kind.INFORMATION, "Sortie au musée", "Départ à 8 h.", STUDENTS,
            True, (), False)
        assert (b.status, b.created_at, b.publish_at, b.published_at, b.dropped,
                b.reminded_at, b.deadline, b.expires_at) == (
            "published", at(1), at(1), at(1), None, None, None, None)
        assert (b.stats.recipients, b.stats.received, b.stats.read, b.stats.acknowledged,
                b.stats.answered, b.stats.counts) == (2, 0, 0, 0, 0, ())
        assert [r.user_id for r in await schools.receipts(HUGO, b.id)] == [E1, E2]

    async def test_a_poll_keeps_its_questions_and_counts_from_zero(self, schools: Store):
        b, _ = await schools.create_broadcast(HUGO, T1, poll(anonymous=True), now=at(1),
                                              publish_at=at(1), deadline=at(100),
                                              recipients=[E1])
        assert (b.kind, b.questions, b.anonymous, b.deadline) == (
            Kind.POLL, QUESTIONS, True, at(100))
        assert b.stats.counts == ((0, 0, 0), (0, 0, 0), None)

    async def test_a_retry_is_the_original(self, schools: Store):
        b = await publish_now(schools, information(), [E1, E2])
        again, new = await schools.create_broadcast(HUGO, T1, information(), now=at(5),
                                                    publish_at=at(5), deadline=None,
                                                    recipients=[E1, E2, E3])
        assert not new
        assert again == b
        assert len(await schools.receipts(HUGO, b.id)) == 2
        assert await schools.find_broadcast(HUGO, T1, "b1") == b
        assert await schools.find_broadcast(HUGO, T2, "b1") is None
        assert await schools.find_broadcast(MOULIN, T1, "b1") is None
        assert [x.id for x in await schools.broadcasts_sent(HUGO, T1)] == [b.id]

    async def test_get_only_in_its_school(self, schools: Store):
        b = await publish_now(schools, information(), [E1])
        assert await schools.get_broadcast(HUGO, b.id) == b
        with pytest.raises(NotFound):
            await schools.get_broadcast(MOULIN, b.id)
        with pytest.raises(NotFound):
            await schools.get_broadcast(HUGO, 999_999)


class TestSchedule:
    async def test_claimed_once_then_published(self, schools: Store):
        b, new = await schools.create_broadcast(HUGO, T1, information(), now=at(0),
                                                publish_at=at(30), deadline=None,
                                                recipients=None)
        assert new
        assert (b.status, b.publish_at, b.published_at, b.stats.recipients) == (
            "scheduled", at(30), None, 0)
        assert await schools.receipts(HUGO, b.id) == []
        assert await schools.claim_due_broadcasts(at(29)) == []
        assert [x.id for x in await schools.claim_due_broadcasts(at(30))] == [b.id]
        assert await schools.claim_due_broadcasts(at(30.5)) == []  # claimed
        out = await schools.publish_broadcast(HUGO, b.id, [E1, E2, E3], now=at(31))
        assert (out.status, out.published_at, out.stats.recipients) == (
            "published", at(31), 3)
        assert out.stats.version > b.stats.version
        assert [r.user_id for r in await schools.receipts(HUGO, b.id)] == [E1, E2, E3]
        assert await schools.claim_due_broadcasts(at(40)) == []  # published: never again
        # Publishing again (a node that lost its claim) changes nothing.
        twice = await schools.publish_broadcast(HUGO, b.id, [E1], now=at(41))
        assert twice == out

    async def test_a_claim_older_than_a_minute_is_taken_over_in_order(self, schools: Store):
        late, _ = await schools.create_broadcast(HUGO, T1, information("b1"), now=at(0),
                                                 publish_at=at(20), deadline=None,
                                                 recipients=None)
        early, _ = await schools.create_broadcast(HUGO, T2, information("b2"), now=at(0),
                                                  publish_at=at(10), deadline=None,
                                                  recipients=None)
        assert [x.id for x in await schools.claim_due_broadcasts(at(20), limit=1)] == [
            early.id]
        assert [x.id for x in await schools.claim_due_broadcasts(at(20))] == [late.id]
        assert [x.id for x in await schools.claim_due_broadcasts(at(21.5))] == [
            early.id, late.id]

    async def test_several_processes_claim_each_broadcast_exactly_once(
            self, schools: Store, store_url: str, tmp_path: Path):
        ids = set()
        for i in range(60):
            b, _ = await schools.create_broadcast(HUGO if i % 2 else MOULIN, T1,
                                                  information(f"b{i}"), now=at(0),
                                                  publish_at=at(1), deadline=None,
                                                  recipients=None)
            ids.add(b.id)
        job = {"do": "claim_broadcasts", "url": store_url, "school": HUGO,
               "now": at(2).isoformat(), "rounds": 10, "limit": 5}
        answers = await run_workers([job] * 4, tmp_path / "go")
        claimed = [i for answer in answers for i in answer]
        assert sorted(claimed) == sorted(ids)  # every one, once

    async def test_rescheduled_for_the_opening_then_dropped(self, schools: Store):
        b, _ = await schools.create_broadcast(HUGO, T1, information(), now=at(0),
                                              publish_at=at(10), deadline=None,
                                              recipients=None)
        assert len(await schools.claim_due_broadcasts(at(10))) == 1
        await schools.reschedule_broadcast(HUGO, b.id, at(600))  # outside the hours
        moved = await schools.get_broadcast(HUGO, b.id)
        assert (moved.status, moved.publish_at) == ("scheduled", at(600))
        assert await schools.schools_holding(at(11)) == [HUGO]  # held for the hours now
        assert await schools.claim_due_broadcasts(at(599)) == []
        assert [x.id for x in await schools.claim_due_broadcasts(at(600))] == [b.id]
        dropped = await schools.drop_broadcast(HUGO, b.id, "forbidden", "plus autorisé")
        assert (dropped.status, dropped.dropped) == ("dropped", ("forbidden", "plus autorisé"))
        assert await schools.claim_due_broadcasts(at(700)) == []
        assert [x.status for x in await schools.broadcasts_sent(HUGO, T1)] == ["dropped"]
        # A published broadcast cannot be dropped.
        live = await publish_now(schools, information("b2"), [E1])
        assert (await schools.drop_broadcast(HUGO, live.id, "x", "y")).status == "published"


class TestLists:
    async def test_received_newest_first_until_expiry(self, schools: Store):
        old = await publish_now(schools, information("b1"), [E1, E2], now=at(1))
        short = await publish_now(schools, information("b2", expires_at=at(30)), [E1],
                                  now=at(2))
        new = await publish_now(schools, information("b3"), [E1], now=at(3))
        await schools.create_broadcast(HUGO, T1, information("b4"), now=at(3),
                                       publish_at=at(50), deadline=None, recipients=None)
        got = await schools.broadcasts_received(HUGO, E1, now=at(10))
        assert [b.id for b, _ in got] == [new.id, short.id, old.id]
        assert all(r.user_id == E1 and r.broadcast_id == b.id for b, r in got)
        assert [b.id for b, _ in await schools.broadcasts_received(HUGO, E1, now=at(40))] == [
            new.id, old.id]
        assert [b.id for b, _ in await schools.broadcasts_received(HUGO, E1, now=at(10),
                                                                   limit=1)] == [new.id]
        assert [b.id for b, _ in await schools.broadcasts_received(HUGO, E2, now=at(10))] == [
            old.id]
        assert await schools.broadcasts_received(MOULIN, E1, now=at(10)) == []
        assert await schools.broadcasts_received(HUGO, P1, now=at(10)) == []

    async def test_received_and_sent_page_by_a_stable_position(self, schools: Store):
        # 250 broadcasts, some published at the same instant: ties go by id, newest first.
        made = [await publish_now(schools, information(f"b{i}"), [E1], now=at(i // 3))
                for i in range(250)]
        newest_first = [b.id for b in reversed(made)]
        seen: list[int] = []
        before: tuple[datetime, int] | None = None
        while True:
            page = await schools.broadcasts_received(HUGO, E1, now=at(500), limit=101,
                                                     before=before)
            seen += [b.id for b, _ in page[:100]]
            if len(page) <= 100:
                break
            last = page[99][0]
            assert last.published_at is not None
            before = (last.published_at, last.id)
            # published while paging: on top of the order, never in the following pages
            made.append(await publish_now(schools, information(f"late{len(seen)}"), [E1],
                                          now=at(400)))
        assert seen == newest_first
        sent: list[int] = []
        after: int | None = None
        while True:
            got = await schools.broadcasts_sent(HUGO, T1, limit=101, before=after)
            sent += [b.id for b in got[:100]]
            if len(got) <= 100:
                break
            after = got[99].id
        assert sent == [b.id for b in reversed(made)]
        # a position taken in another school gives nothing of this one
        assert await schools.broadcasts_received(MOULIN, E1, now=at(500),
                                                 before=(at(500), made[-1].id + 1)) == []
        assert await schools.broadcasts_sent(MOULIN, T1, before=made[-1].id + 1) == []

    async def test_only_published_ones_are_received_and_every_one_is_sent(
            self, schools: Store):
        live = await publish_now(schools, information("b1"), [E1], now=at(1))
        later, _ = await schools.create_broadcast(HUGO, T1, information("b2"), now=at(2),
                                                  publish_at=at(50), deadline=None,
                                                  recipients=None)
        gone, _ = await schools.create_broadcast(HUGO, T1, information("b3"), now=at(3),
                                                 publish_at=at(4), deadline=None,
                                                 recipients=None)
        await schools.drop_broadcast(HUGO, gone.id, "forbidden", "non")
        assert [b.id for b, _ in await schools.broadcasts_received(HUGO, E1, now=at(10))] == [
            live.id]
        assert [b.id for b in await schools.broadcasts_sent(HUGO, T1)] == [
            gone.id, later.id, live.id]

    async def test_undelivered_only(self, schools: Store):
        a = await publish_now(schools, information("b1"), [E1], now=at(1))
        b = await publish_now(schools, information("b2"), [E1], now=at(2))
        await schools.mark_broadcast_received(HUGO, a.id, [E1], now=at(3))
        got = await schools.broadcasts_received(HUGO, E1, now=at(4), undelivered=True)
        assert [x.id for x, _ in got] == [b.id]
        await schools.mark_broadcast_received(HUGO, b.id, [E1], now=at(5))
        assert await schools.broadcasts_received(HUGO, E1, now=at(6), undelivered=True) == []

    async def test_sent_newest_first(self, schools: Store):
        ids = [(await publish_now(schools, information(f"b{i}"), [E1], now=at(i))).id
               for i in range(3)]
        assert [b.id for b in await schools.broadcasts_sent(HUGO, T1)] == ids[::-1]
        assert [b.id for b in await schools.broadcasts_sent(HUGO, T1, limit=2)] == ids[:0:-1]
        assert await schools.broadcasts_sent(HUGO, T2) == []
        assert await schools.broadcasts_sent(MOULIN, T1) == []


class TestReceipts:
    async def test_received_read_and_acknowledged_are_counted_once(self, schools: Store):
        b = await publish_now(schools, information(ack=True), [E1, E2, E3])
        stats = await schools.mark_broadcast_received(HUGO, b.id, [E1, E2], now=at(1))
        assert stats is not None
        assert (stats.received, stats.version) == (2, b.stats.version + 1)
        assert await schools.mark_broadcast_received(HUGO, b.id, [E1, E2], now=at(2)) is None
        assert await schools.mark_broadcast_received(HUGO, b.id, [], now=at(2)) is None
        receipt, figures = await schools.mark_broadcast_read(HUGO, b.id, E3, now=at(3))
        assert (receipt.received_at, receipt.read_at, receipt.acknowledged_at) == (
            at(3), at(3), None)  # reading implies receiving
        assert figures is not None
        assert (figures.received, figures.read, figures.acknowledged) == (3, 1, 0)
        again, none = await schools.mark_broadcast_read(HUGO, b.id, E3, now=at(4))
        assert (again, none) == (receipt, None)
        acked, figures = await schools.mark_broadcast_read(HUGO, b.id, E1, now=at(5),
                                                           acknowledge=True)
        assert (acked.received_at, acked.read_at, acked.acknowledged_at) == (
            at(1), at(5), at(5))
        assert figures is not None
        assert (figures.received, figures.read, figures.acknowledged) == (3, 2, 1)
        assert (await schools.get_broadcast(HUGO, b.id)).stats == figures
        assert await schools.receipt(HUGO, b.id, E1) == acked
        assert await schools.receipt(HUGO, b.id, P1) is None
        assert await schools.receipt(MOULIN, b.id, E1) is None
        assert [r.user_id for r in await schools.receipts(HUGO, b.id)] == [E1, E2, E3]
        assert await schools.receipts(MOULIN, b.id) == []
        with pytest.raises(NotFound):
            await schools.mark_broadcast_read(HUGO, b.id, P1, now=at(6))

    async def test_answers_move_the_counts(self, schools: Store):
        b = await publish_now(schools, poll(), [E1, E2])
        first: list[Answer] = [{"choices": [1]}, {"choices": [0, 2]}, {"text": "non"}]
        receipt, stats = await schools.answer_poll(HUGO, b.id, E1, first, now=at(1))
        assert receipt.answers == tuple(first)
        assert (receipt.received_at, receipt.read_at, receipt.answered_at) == (
            at(1), at(1), at(1))
        assert (stats.received, stats.read, stats.answered) == (1, 1, 1)
        assert stats.counts == ((0, 1, 0), (1, 0, 1), None)
        changed: list[Answer] = [{"choices": [2]}, {"choices": [0]}, {"text": "oui"}]
        receipt, stats = await schools.answer_poll(HUGO, b.id, E1, changed, now=at(2))
        assert (receipt.answers, receipt.answered_at) == (tuple(changed), at(2))
        assert (stats.answered, stats.counts) == (1, ((0, 0, 1), (1, 0, 0), None))
        _, stats = await schools.answer_poll(HUGO, b.id, E2, changed, now=at(3))
        assert (stats.answered, stats.counts) == (2, ((0, 0, 2), (2, 0, 0), None))
        assert (await schools.get_broadcast(HUGO, b.id)).stats == stats
        with pytest.raises(NotFound):
            await schools.answer_poll(HUGO, b.id, P1, changed, now=at(4))

    async def test_answering_after_reading_counts_only_the_answer(self, schools: Store):
        b = await publish_now(schools, poll(), [E1])
        _, read = await schools.mark_broadcast_read(HUGO, b.id, E1, now=at(1))
        assert read is not None
        receipt, stats = await schools.answer_poll(
            HUGO, b.id, E1, [{"choices": [0]}, {"choices": []}, {"text": ""}], now=at(2))
        assert (receipt.received_at, receipt.read_at, receipt.answered_at) == (
            at(1), at(1), at(2))
        assert (stats.received, stats.read, stats.answered) == (1, 1, 1)
        assert stats.version == read.version + 1
        assert stats.counts == ((1, 0, 0), (0, 0, 0), None)

    async def test_counts_are_exact_when_several_processes_answer_at_once(
            self, schools: Store, store_url: str, tmp_path: Path):
        users = [UserId(f"e{i}") for i in range(100, 160)]
        b = await publish_now(schools, poll(), users)
        answers = [{"choices": [0]}, {"choices": [1, 2]}, {"text": "ok"}]
        groups = [users[i::4] for i in range(4)]
        jobs = [{"do": "answer", "url": store_url, "school": HUGO, "now": at(5).isoformat(),
                 "broadcast": b.id, "users": group, "answers": answers} for group in groups]
        # A second round from other processes changes everyone's first choice.
        changed = [{"choices": [2]}, {"choices": [1, 2]}, {"text": "ok"}]
        jobs += [{**job, "answers": changed, "now": at(6).isoformat()} for job in jobs[:2]]
        figures = await run_workers(jobs[:4], tmp_path / "go1")
        seen = sorted(f[0] for answer in figures for f in answer)
        assert seen == list(range(1, 61))  # each answer saw its own exact figure
        await run_workers(jobs[4:], tmp_path / "go2")
        final = (await schools.get_broadcast(HUGO, b.id)).stats
        moved = len(groups[0]) + len(groups[1])
        assert (final.recipients, final.received, final.read, final.answered) == (
            60, 60, 60, 60)
        assert final.counts == ((60 - moved, 0, moved), (0, 60, 60), None)
        receipts = await schools.receipts(HUGO, b.id)
        assert sum(r.answers == tuple(changed) for r in receipts) == moved

    async def test_reminders_are_recorded(self, schools: Store):
        b = await publish_now(schools, information(ack=True), [E1, E2])
        await schools.remind_broadcast(HUGO, b.id, [E2], now=at(10))
        assert (await schools.get_broadcast(HUGO, b.id)).reminded_at == at(10)
        e1, e2 = await schools.receipts(HUGO, b.id)
        assert (e1.reminded_at, e2.reminded_at) == (None, at(10))
        await schools.remind_broadcast(HUGO, b.id, [E1, E2], now=at(20))
        assert [r.reminded_at for r in await schools.receipts(HUGO, b.id)] == [at(20)] * 2
        assert (await schools.get_broadcast(HUGO, b.id)).reminded_at == at(20)
        await schools.remind_broadcast(MOULIN, b.id, [E1], now=at(30))  # not its broadcast
        e1_now = await schools.receipt(HUGO, b.id, E1)
        assert e1_now is not None
        assert e1_now.reminded_at == at(20)
        assert (await schools.get_broadcast(HUGO, b.id)).reminded_at == at(20)


class TestAcrossNodes:
    async def test_one_broadcast_per_client_id_when_several_processes_create_it(
            self, schools: Store, store_url: str, tmp_path: Path):
        ids = [f"b{i}" for i in range(20)]
        job = {"do": "broadcast", "url": store_url, "school": HUGO, "now": at(1).isoformat(),
               "author": T1, "users": [E1, E2], "client_ids": ids}
        answers = await run_workers([job] * 3, tmp_path / "go")
        for i in range(len(ids)):
            told = [answer[i] for answer in answers]
            assert len({b for _, b, _ in told}) == 1  # the same broadcast for everyone
            assert sum(new for _, _, new in told) == 1  # new for one of them only
        sent = await schools.broadcasts_sent(HUGO, T1)
        assert sorted(b.client_id for b in sent) == sorted(ids)
        assert all(b.stats.recipients == 2 for b in sent)
        for b in sent:
            assert [r.user_id for r in await schools.receipts(HUGO, b.id)] == [E1, E2]

    async def test_received_is_exact_for_many_recipients_marked_by_several_processes(
            self, schools: Store, store_url: str, tmp_path: Path):
        users = [f"e{i:04d}" for i in range(1200)]  # more than one statement's worth
        b = await publish_now(schools, information(), [UserId(u) for u in users])
        # Three nodes deliver overlapping groups of connections at once.
        groups = [[users[i:i + 150] for i in range(0, 1200, 150)],
                  [users[i:i + 300] for i in range(300, 1200, 300)],
                  [users[::2], users[1::2]]]
        jobs = [{"do": "received", "url": store_url, "school": HUGO, "now": at(2).isoformat(),
                 "broadcast": b.id, "groups": g} for g in groups]
        answers = await run_workers(jobs, tmp_path / "go")
        figures = [f for answer in answers for f in answer if f is not None]
        assert max(figures) == 1200
        assert len(set(figures)) == len(figures)  # each change its own exact figure
        final = (await schools.get_broadcast(HUGO, b.id)).stats
        assert (final.recipients, final.received, final.read) == (1200, 1200, 0)
        receipts = await schools.receipts(HUGO, b.id)
        assert [r.user_id for r in receipts] == users
        assert all(r.received_at == at(2) for r in receipts)
        assert await schools.mark_broadcast_received(HUGO, b.id, [UserId(u) for u in users],
                                                     now=at(3)) is None
