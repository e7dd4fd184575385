"""The DiscussionStore contract (server/store/contract.py), on SQLite and PostgreSQL.

A discussion exists with its first message or not at all; a retried start finds the
original; membership moves by versions; each participant's list shows what they may
see, in the order of last activity.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import MembersChanged, NotFound
from server.model import DiscussionId, UserId
from server.store import AlreadyStarted, Store
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import A1, E1, E2, E3, HUGO, MOULIN, P1, S1, T1, T2, at

pytestmark = pytest.mark.anyio


class TestCreate:
    async def test_creator_and_recipients_once_each_in_order(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "Devoirs", [E1, E1, E2, T1], now=at(1))
        assert [(p.user_id, p.invited_by, p.joined_at, p.left_at) for p in m.participants] == [
            (T1, None, at(1), None), (E1, T1, at(1), None), (E2, T1, at(1), None)]
        d = await schools.get_discussion(HUGO, m.id)
        assert (d.id, d.school_id, d.subject, d.created_by, d.created_at, d.last_seq) == (
            m.id, HUGO, "Devoirs", T1, at(1), 0)
        assert await schools.members(HUGO, m.id) == m

    async def test_with_its_first_message_in_one_go(self, schools: Store):
        m = await schools.create_discussion(HUGO, E1, "Cantine", [T1], now=at(2),
                                            first=("s1", "Bonjour"))
        assert (await schools.get_discussion(HUGO, m.id)).last_seq == 1
        [first] = await schools.messages_after(HUGO, m.id, 0)
        assert (first.seq, first.sender, first.client_id, first.body, first.created_at) == (
            1, E1, "s1", "Bonjour", at(2))
        # The next message follows it.
        nxt, _ = await schools.append_message(HUGO, m.id, T1, "c1", "Oui ?", now=at(3))
        assert nxt.seq == 2

    async def test_a_retried_start_finds_the_original(self, schools: Store):
        assert await schools.find_started(HUGO, E1, "s1") is None
        m = await schools.create_discussion(HUGO, E1, "Cantine", [T1], now=at(2),
                                            first=("s1", "Bonjour"))
        found = await schools.find_started(HUGO, E1, "s1")
        assert found is not None
        assert (found.discussion_id, found.seq, found.sender, found.body) == (
            m.id, 1, E1, "Bonjour")
        # A node retrying the start asks first, and creates nothing more.
        if await schools.find_started(HUGO, E1, "s1") is None:
            await schools.create_discussion(HUGO, E1, "Cantine", [T1], now=at(3),
                                            first=("s1", "Bonjour"))
        assert [d.id for d in await schools.discussions_of(HUGO, E1)] == [m.id]
        # Not someone else's start, not a reply with that id, not another school's.
        assert await schools.find_started(HUGO, T1, "s1") is None
        await schools.append_message(HUGO, m.id, T1, "r1", "Oui ?", now=at(4))
        assert await schools.find_started(HUGO, T1, "r1") is None
        assert await schools.find_started(MOULIN, E1, "s1") is None

    async def test_a_start_stored_already_is_refused_with_the_original(self, schools: Store):
        """What a node that found no earlier start meets when another stored it meanwhile."""
        m = await schools.create_discussion(HUGO, E1, "Cantine", [T1], now=at(2),
                                            first=("s1", "Bonjour"))
        with pytest.raises(AlreadyStarted) as race:
            await schools.create_discussion(HUGO, E1, "Autre", [T2], now=at(3),
                                            first=("s1", "Autre chose"))
        e = race.value.earlier
        assert (e.discussion_id, e.seq, e.sender, e.client_id, e.body, e.created_at) == (
            m.id, 1, E1, "s1", "Bonjour", at(2))
        # Nothing of the refused attempt was kept: no discussion, no participant.
        assert [d.id for d in await schools.discussions_of(HUGO, E1)] == [m.id]
        assert await schools.discussions_of(HUGO, T2) == []
        # The same client id stays free for another creator, another school, and for
        # discussions created without a first message.
        other = await schools.create_discussion(HUGO, T1, "S", [E1], now=at(4),
                                                first=("s1", "Oui"))
        elsewhere = await schools.create_discussion(MOULIN, E1, "S", [], now=at(4),
                                                    first=("s1", "Ailleurs"))
        bare = [await schools.create_discussion(HUGO, E1, "S", [T1], now=at(5))
                for _ in range(2)]
        assert len({m.id, other.id, elsewhere.id, *(b.id for b in bare)}) == 5
        found = await schools.find_started(HUGO, E1, "s1")
        assert found is not None
        assert found.discussion_id == m.id

    async def test_unknown_or_elsewhere_is_not_found(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "S", [E1], now=at(0))
        with pytest.raises(NotFound):
            await schools.get_discussion(HUGO, DiscussionId(999_999))
        with pytest.raises(NotFound):
            await schools.get_discussion(MOULIN, m.id)
        with pytest.raises(NotFound):
            await schools.members(MOULIN, m.id)
        with pytest.raises(NotFound):
            await schools.members(HUGO, DiscussionId(999_999))
        assert await schools.discussions_of(MOULIN, T1) == []
        assert [d.id for d in await schools.discussions_of(HUGO, E1)] == [m.id]


class TestMembership:
    async def test_leave_and_come_back_bump_the_version(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "Devoirs", [E1, E2], now=at(0))
        left = await schools.leave(HUGO, m.id, T1, now=at(1))
        assert left.version == m.version + 1
        assert [p.user_id for p in left.present()] == [E1, E2]
        gone = left.get(T1)
        assert gone is not None
        assert gone.left_at == at(1)
        with pytest.raises(NotFound):
            await schools.leave(HUGO, m.id, T1, now=at(2))  # already gone
        with pytest.raises(NotFound):
            await schools.leave(HUGO, m.id, P1, now=at(2))  # never in
        with pytest.raises(NotFound):
            await schools.leave(MOULIN, m.id, E1, now=at(2))
        back = await schools.add_participant(HUGO, m.id, T1, invited_by=S1, now=at(3))
        assert back.version == left.version + 1
        again = back.get(T1)
        assert again is not None
        assert (again.invited_by, again.joined_at, again.left_at) == (S1, at(3), None)
        assert [p.user_id for p in back.participants] == [T1, E1, E2]

    async def test_an_invitation_checked_against_other_members_is_refused(
            self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "S", [E1], now=at(0), first=("c0", "m1"))
        await schools.add_participant(HUGO, m.id, E2, invited_by=T1, now=at(1))
        with pytest.raises(MembersChanged):
            await schools.add_participant(HUGO, m.id, P1, invited_by=T1, now=at(2),
                                          members_version=m.version, readable_authors=[])
        with pytest.raises(NotFound):
            await schools.add_participant(HUGO, DiscussionId(999_999), P1, invited_by=T1,
                                          now=at(2), members_version=1)
        with pytest.raises(NotFound):
            await schools.add_participant(MOULIN, m.id, P1, invited_by=T1, now=at(2))
        assert [p.user_id for p in (await schools.members(HUGO, m.id)).participants] == [
            T1, E1, E2]

    async def test_earlier_messages_of_authors_not_readable_are_hidden(self, schools: Store):
        """docs/policy.md, "People who arrive later" (the store's part)."""
        m = await schools.create_discussion(HUGO, E1, "S", [T1], now=at(0),
                                            first=("c0", "Bonjour madame"))
        await schools.append_message(HUGO, m.id, T1, "c1", "Oui ?", now=at(1))
        await schools.append_message(HUGO, m.id, E1, "c2", "x", now=at(2), hidden_from=[P1])
        joined = await schools.add_participant(HUGO, m.id, E2, invited_by=T1, now=at(3),
                                               members_version=m.version,
                                               readable_authors=[T1, E2])
        assert joined.version == m.version + 1
        seen = {x.seq: x.hidden_from for x in await schools.messages(HUGO, m.id)}
        assert seen == {1: {E2}, 2: set(), 3: {E2, P1}}
        assert [x.seq for x in await schools.messages(HUGO, m.id, reader=E2)] == [2]

    async def test_coming_back_hides_only_what_was_said_while_away(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "S", [E1, E2], now=at(0),
                                            first=("c0", "m1"))
        await schools.append_message(HUGO, m.id, E1, "c1", "m2", now=at(1))
        gone = await schools.leave(HUGO, m.id, E2, now=at(2))
        await schools.append_message(HUGO, m.id, E1, "c2", "m3", now=at(3))
        await schools.append_message(HUGO, m.id, T1, "c3", "m4", now=at(4))
        await schools.add_participant(HUGO, m.id, E2, invited_by=T1, now=at(5),
                                      members_version=gone.version, readable_authors=[T1, E2])
        # m2 was said while she was there (decided when it was posted); m3 while away.
        assert [x.seq for x in await schools.messages(HUGO, m.id, reader=E2)] == [4, 2, 1]


class TestLists:
    async def test_discussions_of_and_present_discussions(self, schools: Store):
        a = await schools.create_discussion(HUGO, T1, "A", [E1], now=at(0))
        b = await schools.create_discussion(HUGO, T2, "B", [E1, E3], now=at(1))
        c = await schools.create_discussion(HUGO, T1, "C", [E2], now=at(2))
        await schools.append_message(HUGO, a.id, T1, "c1", "réveil", now=at(5))
        await schools.leave(HUGO, b.id, E1, now=at(6))
        # Most recently active first, left ones included.
        assert [d.id for d in await schools.discussions_of(HUGO, E1)] == [a.id, b.id]
        assert [d.id for d in await schools.discussions_of(HUGO, T1)] == [a.id, c.id]
        listed = (await schools.discussions_of(HUGO, E1))[0]
        assert (listed.subject, listed.created_by, listed.last_seq) == ("A", T1, 1)
        assert sorted(await schools.present_discussions(HUGO, E1)) == [a.id]
        assert sorted(await schools.present_discussions(HUGO, T1)) == sorted([a.id, c.id])
        assert await schools.present_discussions(MOULIN, T1) == []
        assert await schools.present_discussions(HUGO, A1) == []

    async def test_summaries_in_order_of_activity_and_by_pages(self, schools: Store):
        ids = []
        for i in range(5):
            m = await schools.create_discussion(HUGO, T1, f"S{i}", [E1], now=at(i))
            ids.append(m.id)
        await schools.append_message(HUGO, ids[1], E1, "c1", "relance", now=at(10))
        listed = await schools.summaries(HUGO, E1)
        order = [ids[1], ids[4], ids[3], ids[2], ids[0]]
        assert [s.discussion.id for s in listed] == order
        assert [s.last_at for s in listed] == [at(10), at(4), at(3), at(2), at(0)]
        first = await schools.summaries(HUGO, E1, limit=2)
        assert [s.discussion.id for s in first] == order[:2]
        last = first[-1]
        assert last.last_at is not None
        rest = await schools.summaries(HUGO, E1, before=(last.last_at, last.discussion.id))
        assert [s.discussion.id for s in rest] == order[2:]
        only = await schools.summaries(HUGO, E1, discussion_id=ids[3])
        assert [s.discussion.id for s in only] == [ids[3]]
        assert await schools.summaries(MOULIN, E1) == []

    async def test_summaries_with_the_same_last_activity_page_by_id(self, schools: Store):
        ids = [(await schools.create_discussion(HUGO, T1, f"S{i}", [E1], now=at(0))).id
               for i in range(4)]
        listed = await schools.summaries(HUGO, E1)
        assert [s.discussion.id for s in listed] == sorted(ids, reverse=True)
        rest = await schools.summaries(HUGO, E1, before=(at(0), listed[1].discussion.id))
        assert [s.discussion.id for s in rest] == sorted(ids, reverse=True)[2:]

    async def test_a_summary_shows_only_what_the_user_may_read(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "S", [E1, E2], now=at(0),
                                            first=("c0", "m1"))
        await schools.append_message(HUGO, m.id, T1, "c1", "m2", now=at(1))
        await schools.append_message(HUGO, m.id, T1, "c2", "m3 pas pour e1", now=at(2),
                                     hidden_from=[E1])
        await schools.mark_read(HUGO, m.id, E1, 1)
        [s] = await schools.summaries(HUGO, E1)
        assert s.members == await schools.members(HUGO, m.id)
        assert (s.read_seq, s.visible_seq, s.hidden_unread) == (1, 3, 1)
        assert s.last_message is not None
        assert s.last_message.body == "m2"  # not the one hidden from her
        assert s.discussion.last_seq == 3
        await schools.leave(HUGO, m.id, E2, now=at(3))
        await schools.append_message(HUGO, m.id, T1, "c3", "m4", now=at(4))
        [gone] = await schools.summaries(HUGO, E2)
        assert (gone.read_seq, gone.visible_seq, gone.hidden_unread) == (0, 3, 0)
        assert gone.last_message is not None
        assert gone.last_message.seq == 3  # what was said before she left

    async def test_discussion_summaries_for_several_users_at_once(self, schools: Store):
        m = await schools.create_discussion(HUGO, T1, "S", [E1, E2], now=at(0),
                                            first=("c0", "m1"))
        await schools.append_message(HUGO, m.id, T1, "c1", "m2 pas pour e1", now=at(1),
                                     hidden_from=[E1])
        await schools.mark_read(HUGO, m.id, E2, 2)
        found = await schools.discussion_summaries(HUGO, m.id, [E1, E2, P1, E1])
        assert set(found) == {E1, E2}  # p1 never took part
        for user in (E1, E2):
            alone = await schools.summaries(HUGO, user, discussion_id=m.id)
            assert found[user].discussion == alone[0].discussion
            assert found[user].members == alone[0].members
            assert (found[user].read_seq, found[user].visible_seq,
                    found[user].hidden_unread) == (alone[0].read_seq, alone[0].visible_seq,
                                                   alone[0].hidden_unread)
            assert found[user].last_message == alone[0].last_message
        last = found[E1].last_message
        assert last is not None
        assert last.seq == 1
        assert (found[E2].read_seq, found[E1].hidden_unread) == (2, 1)
        assert await schools.discussion_summaries(MOULIN, m.id, [E1]) == {}
        assert await schools.discussion_summaries(HUGO, m.id, []) == {}


    async def test_discussion_summaries_for_a_whole_year_group(self, schools: Store):
        """More users than one statement's worth (SQLite caps its parameters at 999)."""
        everyone = [UserId(f"e{i:04d}") for i in range(1200)]
        m = await schools.create_discussion(HUGO, T1, "Rentrée", everyone, now=at(0),
                                            first=("c0", "Bienvenue"))
        assert len(m.participants) == 1201
        found = await schools.discussion_summaries(HUGO, m.id, [*everyone, T1, P1])
        assert set(found) == {*everyone, T1}
        assert {s.last_message.body if s.last_message else None
                for s in found.values()} == {"Bienvenue"}
        assert {s.visible_seq for s in found.values()} == {1}


class TestRecentStarts:
    async def test_starts_held_ones_included_newest_first(self, schools: Store):
        for i in range(3):
            await schools.create_discussion(HUGO, E1, f"S{i}", [T1], now=at(i * 10))
        await schools.create_discussion(HUGO, T1, "pas e1", [E1], now=at(15))
        await schools.hold(HUGO, E1, "h1", "le soir", discussion_id=None, subject="Soir",
                           recipients=[T1], now=at(25), release_at=at(600))
        d = (await schools.discussions_of(HUGO, E1))[0].id
        await schools.hold(HUGO, E1, "h2", "une réponse", discussion_id=d, subject=None,
                           recipients=[], now=at(26), release_at=at(600))
        assert await schools.recent_starts(HUGO, E1, since=at(5), limit=10) == [
            at(25), at(20), at(10)]
        assert await schools.recent_starts(HUGO, E1, since=at(-1), limit=2) == [
            at(25), at(20)]
        assert await schools.recent_starts(MOULIN, E1, since=at(-1), limit=10) == []


class TestAcrossNodes:
    async def test_one_discussion_when_several_processes_start_it_at_once(
            self, schools: Store, store_url: str, tmp_path: Path):
        ids = [f"s{i}" for i in range(20)]
        job = {"do": "start", "url": store_url, "school": HUGO, "now": at(1).isoformat(),
               "creator": E1, "to": [T1], "client_ids": ids}
        answers = await run_workers([job] * 4, tmp_path / "go")
        started = {}
        for i, cid in enumerate(ids):
            told = [answer[i] for answer in answers]
            assert sum(new for *_, new in told) == 1  # exactly one attempt created it
            # ...and every other attempt was given that discussion and its first message.
            assert {(d, seq, body) for _, d, seq, body, _ in told} == {
                (told[0][1], 1, f"body of {cid}")}
            started[cid] = told[0][1]
        assert sorted(d.id for d in await schools.discussions_of(HUGO, E1)) == sorted(
            started.values())
        for cid, d in started.items():
            found = await schools.find_started(HUGO, E1, cid)
            assert found is not None
            assert found.discussion_id == d
            assert [(m.seq, m.client_id) for m in await schools.messages_after(HUGO, d, 0)] == [
                (1, cid)]
            assert [p.user_id for p in (await schools.members(HUGO, d)).participants] == [E1, T1]
