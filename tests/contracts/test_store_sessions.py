"""The SessionStore contract (server/store/contract.py), on SQLite and PostgreSQL: sign-in
sessions and their refresh tokens, rotated once each, a reuse ending the session, and
the directory's deactivations ending a user's sessions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from server.directory import parse_directory
from server.errors import NotFound
from server.store import RotationOutcome, Store
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, E2, HUGO, MOULIN, T1, T2, at
from tests.schools import school_doc

pytestmark = pytest.mark.anyio

LATER = at(60 * 24 * 30)  # the refresh tokens' expiry in these tests


async def _open(store: Store, sid: str = "s1", user=T1, school=HUGO, *,
                provider: str = "oidc", provider_session: str | None = "op-1",
                refresh: str = "h0") -> None:
    await store.create_session(school, user, session_id=sid, provider=provider,
                               provider_session=provider_session, refresh_hash=refresh,
                               now=at(0), refresh_expires_at=LATER)


class TestCreate:
    async def test_a_session_is_kept_with_its_provider(self, schools: Store):
        created = await schools.create_session(
            HUGO, T1, session_id="s1", provider="cas", provider_session="ST-1",
            refresh_hash="h0", now=at(0), refresh_expires_at=LATER)
        got = await schools.get_session(HUGO, "s1")
        assert got == created
        assert (got.id, got.school_id, got.user_id, got.provider, got.provider_session,
                got.created_at, got.last_used_at, got.revoked_at) == (
            "s1", HUGO, T1, "cas", "ST-1", at(0), at(0), None)

    async def test_another_schools_session_is_not_found(self, schools: Store):
        await _open(schools)
        with pytest.raises(NotFound):
            await schools.get_session(MOULIN, "s1")
        with pytest.raises(NotFound):
            await schools.get_session(HUGO, "nope")


class TestRotate:
    async def test_each_token_rotates_once_and_its_reuse_ends_the_session(
            self, schools: Store):
        await _open(schools)
        first = await schools.rotate_refresh("h0", "h1", now=at(5), refresh_expires_at=LATER)
        assert first.outcome is RotationOutcome.ROTATED
        assert first.session is not None
        assert first.session.last_used_at == at(5)
        second = await schools.rotate_refresh("h1", "h2", now=at(10),
                                              refresh_expires_at=LATER)
        assert second.outcome is RotationOutcome.ROTATED
        # h0 again: someone else holds a copy. The whole session ends, h2 with it.
        reused = await schools.rotate_refresh("h0", "hx", now=at(11),
                                              refresh_expires_at=LATER)
        assert reused.outcome is RotationOutcome.REUSED
        assert reused.session is not None
        assert (reused.session.revoked_at, reused.session.revoked_reason) == (at(11), "reuse")
        after = await schools.rotate_refresh("h2", "h3", now=at(12), refresh_expires_at=LATER)
        assert after.outcome is RotationOutcome.REVOKED
        assert (await schools.rotate_refresh("hx", "h4", now=at(12),
                                             refresh_expires_at=LATER)).outcome \
            is RotationOutcome.UNKNOWN

    async def test_an_expired_token_is_refused_and_changes_nothing(self, schools: Store):
        await schools.create_session(HUGO, T1, session_id="s1", provider="demo",
                                     provider_session=None, refresh_hash="h0", now=at(0),
                                     refresh_expires_at=at(10))
        expired = await schools.rotate_refresh("h0", "h1", now=at(10),
                                               refresh_expires_at=LATER)
        assert expired.outcome is RotationOutcome.EXPIRED
        assert (await schools.get_session(HUGO, "s1")).revoked_at is None
        assert (await schools.rotate_refresh("h1", "h2", now=at(11),
                                             refresh_expires_at=LATER)).outcome \
            is RotationOutcome.UNKNOWN

    async def test_nodes_racing_for_one_token_exactly_one_rotates(
            self, schools: Store, store_url: str, tmp_path: Path):
        await _open(schools)
        jobs = [{"do": "rotate", "url": store_url, "now": at(5).isoformat(), "old": "h0",
                 "new": f"n{i}", "expires": LATER.isoformat()} for i in range(4)]
        outcomes = Counter(await run_workers(jobs, tmp_path / "go"))
        # One wins; the next presents a used token: reuse, and the session ends; the
        # last find it ended.
        assert outcomes == Counter({"rotated": 1, "reused": 1, "revoked": 2})
        session = await schools.get_session(HUGO, "s1")
        assert session.revoked_reason == "reuse"


class TestPrune:
    async def test_only_tokens_nothing_can_use_are_removed(self, schools: Store):
        await _open(schools, "s1", T1, refresh="live")  # expires at LATER, unused
        await _open(schools, "s2", E1, refresh="r0")
        await schools.rotate_refresh("r0", "r1", now=at(10), refresh_expires_at=LATER)
        await schools.create_session(HUGO, E2, session_id="s3", provider="demo",
                                     provider_session=None, refresh_hash="old", now=at(0),
                                     refresh_expires_at=at(30))
        await _open(schools, "s4", T2, refresh="ended")
        await schools.end_sessions(HUGO, now=at(20), reason="logout", session_id="s4")
        # Within the day: r0 (used) is kept to recognise a reuse; "old" expired at 30.
        assert await schools.prune_refresh_tokens(at(40)) == 2  # "old", "ended"
        reused = await schools.rotate_refresh("r0", "x", now=at(41), refresh_expires_at=LATER)
        assert reused.outcome is RotationOutcome.REUSED
        # A day after its use, r0 goes (s2 ended by the reuse: r1 goes with it).
        await _open(schools, "s5", T1, refresh="q0", school=MOULIN)
        await schools.rotate_refresh("q0", "q1", now=at(50), refresh_expires_at=LATER)
        assert await schools.prune_refresh_tokens(at(60 * 25 + 50)) == 3  # r0, r1, q0
        assert (await schools.rotate_refresh("q0", "y", now=at(60 * 25 + 51),
                                             refresh_expires_at=LATER)).outcome \
            is RotationOutcome.UNKNOWN  # pruned: refused, the session goes on
        for token in ("live", "q1"):
            assert (await schools.rotate_refresh(token, f"{token}-2", now=at(60 * 25 + 52),
                                                 refresh_expires_at=LATER)).outcome \
                is RotationOutcome.ROTATED
        assert await schools.prune_refresh_tokens(at(60 * 25 + 53)) == 0


class TestEnd:
    async def test_end_one_by_user_or_by_provider_session(self, schools: Store):
        await _open(schools, "s1", T1, provider_session="op-1", refresh="a")
        await _open(schools, "s2", T1, provider_session="op-2", refresh="b")
        await _open(schools, "s3", E1, provider_session="op-1", refresh="c")
        await _open(schools, "s4", E2, provider="cas", provider_session="op-1", refresh="d")
        await _open(schools, "m1", T1, MOULIN, refresh="e")
        assert await schools.end_sessions(HUGO, now=at(1), reason="logout",
                                          session_id="s2") == ["s2"]
        assert await schools.end_sessions(HUGO, now=at(2), reason="logout",
                                          session_id="s2") == []  # ended already
        assert await schools.end_sessions(HUGO, now=at(3), reason="provider_logout",
                                          provider="oidc", provider_session="op-1") \
            == ["s1", "s3"]
        assert await schools.end_sessions(HUGO, now=at(4), reason="admin",
                                          user_id=E2) == ["s4"]
        ended = await schools.get_session(HUGO, "s1")
        assert (ended.revoked_at, ended.revoked_reason) == (at(3), "provider_logout")
        assert (await schools.get_session(MOULIN, "m1")).revoked_at is None  # other school
        assert (await schools.rotate_refresh("a", "z", now=at(5), refresh_expires_at=LATER)
                ).outcome is RotationOutcome.REVOKED
        with pytest.raises(ValueError, match="at least one filter"):
            await schools.end_sessions(HUGO, now=at(5), reason="logout")

    async def test_a_deactivating_import_ends_the_users_sessions(self, schools: Store):
        await _open(schools, "s1", T2, refresh="a")
        await _open(schools, "s2", T1, refresh="b")
        doc = school_doc()
        doc["users"] = [u for u in doc["users"] if u["id"] != "t2"]
        await schools.import_directory(parse_directory(doc), actor="t", now=at(7))
        gone = await schools.get_session(HUGO, "s1")
        assert (gone.revoked_at, gone.revoked_reason) == (at(7), "deactivated")
        assert (await schools.get_session(HUGO, "s2")).revoked_at is None
