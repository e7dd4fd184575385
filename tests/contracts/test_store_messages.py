"""The MessageStore contract (server/store/contract.py), on SQLite and PostgreSQL.

Sequence numbers are ``1, 2, 3…`` per discussion with no gap and no duplicate,
whichever process appends; a retried send is the same message; a reader resumes from
``messages_after`` its read position, up to its ``visible_seq``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.errors import MembersChanged, NotFound
from server.model import DiscussionId, UserId
from server.store import Store
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, E2, HUGO, MOULIN, P1, T1, at

pytestmark = pytest.mark.anyio


async def _discussion(store: Store, *recipients: UserId) -> DiscussionId:
    """A discussion started by t1, with e1 and e2 unless ``recipients`` are given."""
    members = await store.create_discussion(HUGO, T1, "Sortie", recipients or (E1, E2),
                                            now=at(0))
    return members.id


class TestAppend:
    async def test_sequence_numbers_are_gap_free_from_one(self, schools: Store):
        d = await _discussion(schools)
        stored = [await schools.append_message(HUGO, d, E1, f"c{i}", f"m{i}", now=at(i))
                  for i in range(5)]
        assert [(m.seq, m.body, new) for m, new in stored] == [
            (i + 1, f"m{i}", True) for i in range(5)]
        assert stored[2][0].created_at == at(2)
        assert (stored[2][0].sender, stored[2][0].client_id) == (E1, "c2")
        assert (await schools.get_discussion(HUGO, d)).last_seq == 5

    async def test_a_retried_send_is_the_same_message(self, schools: Store):
        d = await _discussion(schools)
        first, new = await schools.append_message(HUGO, d, E1, "c1", "Bonjour", now=at(1))
        assert new
        again, new = await schools.append_message(HUGO, d, E1, "c1", "other text", now=at(2))
        assert not new
        assert again == first
        # The same client id from another sender is another message.
        other, new = await schools.append_message(HUGO, d, E2, "c1", "Salut", now=at(3))
        assert (other.seq, new) == (2, True)
        assert (await schools.get_discussion(HUGO, d)).last_seq == 2

    async def test_concurrent_appends_are_gap_free_and_idempotent(self, schools: Store):
        d, other = await _discussion(schools), await _discussion(schools, E2)
        calls = [schools.append_message(HUGO, x, T1, f"c{i % 150}", f"m{i}", now=at(0))
                 for i in range(300) for x in (d, other)]
        results = await asyncio.gather(*calls)
        for x in (d, other):
            stored = await schools.messages_after(HUGO, x, 0)
            assert [m.seq for m in stored] == list(range(1, 151))  # 150 distinct ids
            assert len({m.client_id for m in stored}) == 150
        assert sum(1 for _, new in results if new) == 300
        with pytest.raises(NotFound):
            await schools.append_message(HUGO, DiscussionId(999_999), T1, "x", "y", now=at(0))
        ok, new = await schools.append_message(HUGO, d, T1, "c-after", "z", now=at(0))
        assert (ok.seq, new) == (151, True)  # one bad append does not spoil the others

    async def test_appends_from_several_processes_are_gap_free_without_duplicates(
            self, schools: Store, store_url: str, tmp_path: Path):
        d, other = await _discussion(schools), await _discussion(schools, E2)

        def job(sender: str, ids: list[str], discussion: DiscussionId = d) -> dict[str, object]:
            return {"do": "append", "url": store_url, "school": HUGO, "now": at(1).isoformat(),
                    "discussion": discussion, "sender": sender, "client_ids": ids}

        shared = [f"s{i}" for i in range(20)]  # sent by two processes at once (a retry)
        jobs = [job(T1, [f"a{i}" for i in range(40)] + shared),
                job(T1, [f"b{i}" for i in range(40)] + shared),
                job(E1, [f"c{i}" for i in range(40)]),
                job(E1, [f"d{i}" for i in range(40)]),
                job(E2, [f"e{i}" for i in range(60)], other)]
        answers = await run_workers(jobs, tmp_path / "go")

        stored = await schools.messages_after(HUGO, d, 0)
        assert [m.seq for m in stored] == list(range(1, 4 * 40 + 20 + 1))
        assert Counter((m.sender, m.client_id) for m in stored).most_common(1)[0][1] == 1
        assert (await schools.get_discussion(HUGO, d)).last_seq == 180
        by_key = {(str(m.sender), m.client_id): m.seq for m in stored}
        news = Counter[tuple[str, str]]()
        for j, answer in zip(jobs, answers, strict=True):
            for client_id, seq, new in answer:
                key = (str(j["sender"]), client_id)
                if j["discussion"] == d:
                    assert by_key[key] == seq  # what each process was told is what is stored
                news[key] += bool(new)
        assert all(n == 1 for n in news.values())  # the shared ones: new for one process
        assert [m.seq for m in await schools.messages_after(HUGO, other, 0)] == list(
            range(1, 61))

    async def test_hidden_from_is_kept_and_honoured(self, schools: Store):
        d = await _discussion(schools)
        m, _ = await schools.append_message(HUGO, d, T1, "c1", "pas pour e2", now=at(1),
                                            hidden_from=[E2])
        await schools.append_message(HUGO, d, T1, "c2", "pour tous", now=at(2))
        assert m.hidden_from == {E2}
        assert (await schools.messages_after(HUGO, d, 0))[0].hidden_from == {E2}
        assert [x.seq for x in await schools.messages(HUGO, d, reader=E2)] == [2]
        assert [x.seq for x in await schools.messages(HUGO, d, reader=E1)] == [2, 1]
        found = await schools.find_message(HUGO, d, T1, "c1")
        assert found is not None
        assert found.hidden_from == {E2}

    async def test_a_send_checked_against_other_members_is_refused(self, schools: Store):
        d = await _discussion(schools)
        before = await schools.members(HUGO, d)
        await schools.add_participant(HUGO, d, P1, invited_by=T1, now=at(1))
        with pytest.raises(MembersChanged):
            await schools.append_message(HUGO, d, E1, "c1", "x", now=at(2),
                                         members_version=before.version)
        assert (await schools.get_discussion(HUGO, d)).last_seq == 0
        assert await schools.find_message(HUGO, d, E1, "c1") is None
        now = await schools.members(HUGO, d)
        m, new = await schools.append_message(HUGO, d, E1, "c1", "x", now=at(2),
                                              members_version=now.version)
        assert (m.seq, new) == (1, True)
        # A retry checked against the old members is still the stored message.
        again, new = await schools.append_message(HUGO, d, E1, "c1", "x", now=at(2),
                                                  members_version=before.version)
        assert (again.seq, new) == (1, False)

    async def test_another_school_cannot_append(self, schools: Store):
        d = await _discussion(schools)
        with pytest.raises(NotFound):
            await schools.append_message(MOULIN, d, T1, "x", "y", now=at(0))
        assert (await schools.get_discussion(HUGO, d)).last_seq == 0


class TestRead:
    async def test_find_message(self, schools: Store):
        d = await _discussion(schools)
        m, _ = await schools.append_message(HUGO, d, E1, "c1", "Bonjour", now=at(1))
        assert await schools.find_message(HUGO, d, E1, "c1") == m
        assert await schools.find_message(HUGO, d, E2, "c1") is None
        assert await schools.find_message(HUGO, d, E1, "c2") is None
        assert await schools.find_message(MOULIN, d, E1, "c1") is None

    async def test_messages_pages_backwards(self, schools: Store):
        d = await _discussion(schools)
        for i in range(5):
            await schools.append_message(HUGO, d, E1, f"c{i}", f"m{i}", now=at(i))
        assert [x.seq for x in await schools.messages(HUGO, d, limit=2)] == [5, 4]
        assert [x.seq for x in await schools.messages(HUGO, d, before_seq=4, limit=10)] == [
            3, 2, 1]
        assert [x.body for x in await schools.messages(HUGO, d, before_seq=2)] == ["m0"]
        assert await schools.messages(MOULIN, d) == []

    async def test_messages_for_a_reader_page_backwards_too(self, schools: Store):
        d = await _discussion(schools)
        for i in range(6):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"m{i}", now=at(i),
                                         hidden_from=[E2] if i % 2 else [])
        page = await schools.messages(HUGO, d, reader=E2, limit=2)
        assert [x.seq for x in page] == [5, 3]
        assert [x.seq for x in await schools.messages(HUGO, d, reader=E2,
                                                      before_seq=page[-1].seq)] == [1]
        assert [x.seq for x in await schools.messages(HUGO, d, reader=E1, before_seq=3)] == [
            2, 1]

    async def test_messages_after_replays_in_order(self, schools: Store):
        d = await _discussion(schools)
        for i in range(10):
            await schools.append_message(HUGO, d, E1, f"c{i}", f"m{i}", now=at(i))
        assert [x.seq for x in await schools.messages_after(HUGO, d, 3, upto=6)] == [4, 5, 6]
        assert [x.seq for x in await schools.messages_after(HUGO, d, 0, limit=3)] == [1, 2, 3]
        assert [x.seq for x in await schools.messages_after(HUGO, d, 0, limit=3,
                                                            newest=True)] == [8, 9, 10]
        assert [x.seq for x in await schools.messages_after(HUGO, d, 2, upto=7, limit=2,
                                                            newest=True)] == [6, 7]
        assert await schools.messages_after(HUGO, d, 10) == []
        assert await schools.messages_after(MOULIN, d, 0) == []
        replay = await schools.messages_after(HUGO, d, 4, upto=5)
        assert [(m.sender, m.client_id, m.body, m.created_at) for m in replay] == [
            (E1, "c4", "m4", at(4))]


class TestResume:
    async def test_mark_read_moves_forward_only_and_never_past_the_end(self, schools: Store):
        d = await _discussion(schools)
        for i in range(4):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"m{i}", now=at(i))
        assert await schools.mark_read(HUGO, d, E1, 2) == 2
        assert await schools.mark_read(HUGO, d, E1, 1) == 2  # never back
        assert await schools.mark_read(HUGO, d, E1, 99) == 4  # not past the last message
        with pytest.raises(NotFound):
            await schools.mark_read(HUGO, d, P1, 1)  # never took part
        with pytest.raises(NotFound):
            await schools.mark_read(MOULIN, d, E1, 1)
        summary = (await schools.summaries(HUGO, E1))[0]
        assert summary.read_seq == 4

    async def test_visible_seq_follows_presence(self, schools: Store):
        d = await _discussion(schools)
        await schools.append_message(HUGO, d, T1, "c1", "m1", now=at(1))
        await schools.append_message(HUGO, d, T1, "c2", "m2", now=at(2))
        assert await schools.visible_seq(HUGO, d, E2) == 2  # present: the last seq
        await schools.leave(HUGO, d, E2, now=at(3))
        await schools.append_message(HUGO, d, T1, "c3", "m3", now=at(4))
        assert await schools.visible_seq(HUGO, d, E2) == 2  # gone: where they left
        assert await schools.visible_seq(HUGO, d, E1) == 3
        assert await schools.visible_seq(HUGO, d, P1) is None  # never took part
        assert await schools.visible_seq(MOULIN, d, E1) is None
        # Reading up to the end is capped at where they left.
        assert await schools.mark_read(HUGO, d, E2, 3) == 2

    async def test_read_positions_of_every_participant(self, schools: Store):
        d = await _discussion(schools)
        for i in range(3):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"m{i}", now=at(i))
        assert await schools.read_positions(HUGO, d) == {T1: 0, E1: 0, E2: 0}
        await schools.mark_read(HUGO, d, E1, 2)
        await schools.mark_read(HUGO, d, E2, 1)
        await schools.leave(HUGO, d, E2, now=at(4))  # a former participant keeps theirs
        assert await schools.read_positions(HUGO, d) == {T1: 0, E1: 2, E2: 1}
        assert await schools.read_positions(MOULIN, d) == {}  # another school: nothing
        assert await schools.read_positions(HUGO, DiscussionId(d + 1000)) == {}

    async def test_a_reader_resumes_where_it_stopped(self, schools: Store):
        d = await _discussion(schools)
        for i in range(6):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"m{i}", now=at(i))
        read = await schools.mark_read(HUGO, d, E1, 3)
        upto = await schools.visible_seq(HUGO, d, E1)
        assert [m.seq for m in await schools.messages_after(HUGO, d, read, upto=upto)] == [
            4, 5, 6]


class TestAcrossNodes:
    async def test_a_send_decided_before_a_join_never_reaches_the_newcomer(
            self, schools: Store, store_url: str, tmp_path: Path):
        """Nodes append messages checked against the members as they were, while another
        node brings p1 in, who may read none of the earlier messages (docs/policy.md,
        "People who arrive later"): each message is stored before the join (and hidden
        from p1) or refused with MembersChanged; none slips in after it, visible to p1."""
        d = await _discussion(schools)
        version = (await schools.members(HUGO, d)).version

        def job(sender: str, prefix: str) -> dict[str, object]:
            return {"do": "append", "url": store_url, "school": HUGO, "now": at(1).isoformat(),
                    "discussion": d, "sender": sender, "members_version": version,
                    "one_by_one": True, "client_ids": [f"{prefix}{i}" for i in range(60)]}

        jobs = [job(E1, "a"), job(E2, "b"),
                {"do": "join", "url": store_url, "school": HUGO, "now": at(1).isoformat(),
                 "discussion": d, "after_seq": 20, "user": P1, "invited_by": T1,
                 "readable": []}]
        first, second, joined = await run_workers(jobs, tmp_path / "go")
        assert joined == version + 1
        stored = await schools.messages_after(HUGO, d, 0)
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        assert len(stored) >= 20
        assert all(P1 in m.hidden_from for m in stored)
        assert await schools.messages(HUGO, d, reader=P1) == []
        refused = {cid for cid, seq, new in first + second if seq is None}
        assert refused.isdisjoint(m.client_id for m in stored)
        assert len(refused) + len(stored) == 120

    async def test_read_positions_from_several_processes_never_move_back(
            self, schools: Store, store_url: str, tmp_path: Path):
        d = await _discussion(schools)
        for i in range(30):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"m{i}", now=at(i))

        def job(seqs: list[int]) -> dict[str, object]:
            return {"do": "mark_read", "url": store_url, "school": HUGO,
                    "now": at(40).isoformat(), "discussion": d, "user": E1, "seqs": seqs}

        answers = await run_workers([job(list(range(1, 31))), job(list(range(30, 0, -1))),
                                     job([15] * 30)], tmp_path / "go")
        for positions in answers:
            assert positions == sorted(positions)  # each answer at least the one before
        assert max(max(p) for p in answers) == 30
        assert await schools.mark_read(HUGO, d, E1, 0) == 30


class TestTimes:
    async def test_times_come_back_to_the_microsecond_whatever_their_zone(
            self, schools: Store):
        paris = ZoneInfo("Europe/Paris")
        d = await _discussion(schools)
        when = (at(1) + timedelta(microseconds=123_456)).astimezone(paris)
        m, _ = await schools.append_message(HUGO, d, T1, "c1", "x", now=when)
        assert m.created_at == when
        [back] = await schools.messages_after(HUGO, d, 0)
        assert back.created_at == when
        assert back.created_at.utcoffset() is not None
        sooner = when - timedelta(microseconds=1)
        e, _ = await schools.append_message(HUGO, await _discussion(schools, E2), T1, "c1",
                                            "y", now=sooner)
        # Order of activity down to the microsecond.
        assert [s.discussion.id for s in await schools.summaries(HUGO, T1)] == [
            d, e.discussion_id]
