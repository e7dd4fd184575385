"""The SigninStore contract (server/store/contract.py), on SQLite and PostgreSQL: a
sign-in grant is taken once, by its own school, before it expires; a replay finds
nothing, even when two takes race."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from server.store import Store
from tests.contracts.stores import HUGO, MOULIN, at

pytestmark = pytest.mark.anyio

NOW = at(60)
LATER = NOW + timedelta(minutes=5)


async def test_a_grant_is_taken_once(schools: Store):
    assert await schools.put_signin_grant("code", "k1", HUGO, '{"u": 1}',
                                          expires_at=LATER, now=NOW)
    assert await schools.take_signin_grant("code", "k1", HUGO, now=NOW) == '{"u": 1}'
    assert await schools.take_signin_grant("code", "k1", HUGO, now=NOW) is None


async def test_a_key_is_not_overwritten_and_kinds_are_apart(schools: Store):
    assert await schools.put_signin_grant("pending", "k", HUGO, "a", expires_at=LATER, now=NOW)
    assert not await schools.put_signin_grant("pending", "k", HUGO, "b",
                                              expires_at=LATER, now=NOW)
    assert await schools.put_signin_grant("code", "k", HUGO, "c", expires_at=LATER, now=NOW)
    assert await schools.take_signin_grant("code", "k", HUGO, now=NOW) == "c"
    assert await schools.take_signin_grant("pending", "k", HUGO, now=NOW) == "a"


async def test_another_school_does_not_get_it(schools: Store):
    await schools.put_signin_grant("code", "k2", HUGO, "x", expires_at=LATER, now=NOW)
    assert await schools.take_signin_grant("code", "k2", MOULIN, now=NOW) is None
    assert await schools.take_signin_grant("code", "k2", HUGO, now=NOW) == "x"


async def test_an_expired_grant_is_refused_and_forgotten(schools: Store):
    await schools.put_signin_grant("code", "old", HUGO, "x", expires_at=LATER, now=NOW)
    assert await schools.take_signin_grant("code", "old", HUGO, now=LATER) is None
    await schools.put_signin_grant("code", "old2", HUGO, "y", expires_at=LATER, now=NOW)
    # Putting another grant after the first's expiry forgets it.
    await schools.put_signin_grant("code", "new", HUGO, "z",
                                   expires_at=LATER + timedelta(minutes=5), now=LATER)
    assert await schools.take_signin_grant("code", "old2", HUGO, now=NOW) is None
    assert await schools.take_signin_grant("code", "new", HUGO, now=LATER) == "z"


async def test_two_racing_takes_get_it_once(schools: Store):
    await schools.put_signin_grant("code", "race", HUGO, "x", expires_at=LATER, now=NOW)
    got = await asyncio.gather(*(schools.take_signin_grant("code", "race", HUGO, now=NOW)
                                 for _ in range(5)))
    assert got.count("x") == 1
    assert got.count(None) == 4
