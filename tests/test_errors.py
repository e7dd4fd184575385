"""Error codes are a published contract: frozen here."""

from __future__ import annotations

from server.errors import ErrorCode

FROZEN = {
    "unauthenticated": 401, "bad_request": 400, "too_large": 413, "rate_limited": 429,
    "forbidden": 403, "not_found": 404, "discussions_disabled": 403, "profile_disabled": 403,
    "outside_hours": 403, "cannot_initiate": 403, "recipient_not_allowed": 403,
    "not_participant": 403, "not_invited_by_supervisor": 403,
    "parent_messaging_disabled": 403, "not_opted_in": 403, "cannot_invite": 403,
    "already_participant": 409, "broadcast_not_allowed": 403, "poll_closed": 409,
    "conflict": 409, "internal": 500, "unavailable": 503, "token_expired": 401,
}


def test_codes_and_statuses_never_change():
    assert {c.value: c.status for c in ErrorCode} == FROZEN


def test_every_code_has_a_sentence():
    assert all(c.phrase.endswith(".") for c in ErrorCode)


def test_codes_are_their_wire_strings():
    # mypy reads the members' __new__ signature; lookup by value is what clients do.
    assert ErrorCode("outside_hours") is ErrorCode.OUTSIDE_HOURS  # type: ignore[call-arg]
    assert f"{ErrorCode.OUTSIDE_HOURS}" == "outside_hours"
