"""The signed-in user's own REST views: ``GET /api/me``, ``GET /api/me/settings``,
``GET /api/contacts`` (whom I may write to) and ``GET /api/search`` (in my discussions).

Mounted by :mod:`server.web` through :func:`me_routes`; documented in ``docs/api.md``.
The user's preferences are in :mod:`server.routes_preferences`.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.routing import Route

from . import search
from .contacts import Query, group_views
from .errors import ErrorCode, Refused, wire_params
from .mysettings import my_settings
from .protocol import MAX_SEARCH, SEARCH_PAGE
from .rest import (
    CONTACTS_MAX_PAGE,
    CONTACTS_PAGE,
    REST_COST,
    Api,
    Caller,
    decode_cursor,
    encode_cursor,
    int_param,
    iso,
    person_json,
    window_json,
)
from .settings import Json

__all__ = ["me_routes"]


def me_routes(api: Api) -> list[Route]:
    return [
        Route("/api/me", api(_me)),
        Route("/api/me/settings", api(_my_settings), methods=["GET"]),
        Route("/api/contacts", api(_contacts)),
        Route("/api/search", api(_search), methods=["GET"]),
    ]


async def _me(request: Request, caller: Caller) -> Json:
    gk = caller.school.gatekeeper
    access = gk.check_connect(caller.user.id)
    contacts = gk.check_contacts(caller.user.id) if access.allowed else access
    return {
        "user": person_json(caller, caller.user),
        "school": {"id": caller.school_id, "name": gk.state.directory.school.name,
                   "timezone": gk.state.settings.timezone},
        "admin": gk.is_admin(caller.user.id),
        "access": {"allowed": access.allowed,
                   "code": None if access.code is None else access.code.value,
                   "message": access.message,
                   "params": {} if access.code is None
                   else wire_params(access.code, access.params)},
        "can_start": contacts.allowed,
        "window": window_json(gk.window_state(caller.now)),
        "token_expires_at": iso(caller.identity.expires_at),
    }


async def _my_settings(request: Request, caller: Caller) -> Json:
    """What applies to me (server/mysettings.py), for the "Mes réglages" page."""
    gk = caller.school.gatekeeper
    access = gk.check_connect(caller.user.id)
    contacts = gk.check_contacts(caller.user.id) if access.allowed else access
    return my_settings(gk.state, caller.user, can_start=contacts.allowed, access={
        "allowed": access.allowed, "code": None if access.code is None else access.code.value,
        "message": access.message})


async def _contacts(request: Request, caller: Caller) -> Json:
    """The people the caller may start a discussion with (G1–G5), searchable and paged."""
    gk = caller.school.gatekeeper
    gk.check_contacts(caller.user.id).raise_for_refusal()
    est = caller.school
    query = Query.parse(request.query_params.get("q", ""), gk.state.directory.classes)
    limit = int_param(request, "limit", CONTACTS_PAGE, 1, CONTACTS_MAX_PAGE)
    offset = decode_cursor(request.query_params.get("cursor"))
    people = gk.contacts(caller.user.id)
    if not query.empty:
        people = tuple(u for u in people if query.finds(est, u))
    page = people[offset:offset + limit]
    following = offset + limit
    classes = gk.state.directory.classes
    return {
        "items": [person_json(caller, u) for u in page],
        "next_cursor": encode_cursor(following) if following < len(people) else None,
        "total": len(people),
        # The groups of classes the caller may address in a start (server.contacts),
        # all on every page: there are a few per class at most.
        "groups": [view for group, view in group_views(est, caller.user.id)
                   if query.finds_group(group, classes[group.class_id].name)],
        "window": window_json(gk.window_state(caller.now)),
    }


async def _search(request: Request, caller: Caller) -> Json:
    """GET /api/search?q=&cursor=&limit= (server/search.py; the ``search`` frame's twin)."""
    params = request.query_params
    limit = int_param(request, "limit", SEARCH_PAGE, 1, MAX_SEARCH)
    # As much as the same search through the WebSocket: REST_COST is already taken.
    wait = caller.node.hub.allowance(caller.school_id, caller.user.id).take(
        search.cost(limit) - REST_COST)
    if wait:
        raise Refused(ErrorCode.RATE_LIMITED, retry_at=caller.now + timedelta(seconds=wait))
    results, after = await search.page(caller.store, caller.school_id, caller.user.id,
                                       params.get("q", ""), params.get("cursor") or None, limit)
    return {"results": results, "more": after is not None, "next": after}
