"""The per-address allowance of the routes that run before anyone is known."""

from __future__ import annotations

import time

import pytest

from server.hub import AddressAllowances


def test_one_address_spending_its_allowance_leaves_the_others_theirs() -> None:
    allowances = AddressAllowances(rate=1.0, burst=3.0)
    assert [allowances.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert allowances.take("10.0.0.1") > 0.0  # the fourth waits
    assert allowances.take("10.0.0.2") == 0.0  # another address does not


def test_only_full_allowances_are_forgotten_when_too_many_are_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    allowances = AddressAllowances(rate=1.0, burst=2.0, keep=3)
    allowances.take("idle-0")
    allowances.take("idle-1")
    now[0] = 1005.0  # the two idle ones are full again
    assert allowances.take("busy") == 0.0
    assert allowances.take("busy") == 0.0
    # A fourth address with room for three: the full ones go, the busy one stays, so
    # forgetting never hands a flooding address a fresh allowance.
    assert allowances.take("new") == 0.0
    assert sorted(allowances._allowances) == ["busy", "new"]
    assert allowances.take("busy") > 0.0
