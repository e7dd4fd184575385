"""The administrators' REST routes: the school's settings (``/api/settings``), its
directory (``GET /api/users``) and the audit log (``GET /api/audit``).

Mounted by :mod:`server.web` through :func:`admin_routes`, every one ``admin=True``;
documented in ``docs/api.md``. Other administrators' routes live with their concept:
anyone's preferences in :mod:`server.routes_preferences`, ending a user's sessions in
:mod:`server.session_routes`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from .contacts import Query
from .errors import ErrorCode, Refused
from .model import Role
from .protocol import MAX_INT
from .rest import (
    CONTACTS_MAX_PAGE,
    CONTACTS_PAGE,
    Api,
    Caller,
    audit_json,
    decode_cursor,
    encode_cursor,
    int_param,
    json_body,
    person_json,
)
from .schools import fold
from .settings import Json, apply_settings_patch, preferences_to_json, settings_to_json

__all__ = ["admin_routes"]


def admin_routes(api: Api) -> list[Route]:
    return [
        Route("/api/settings", api(_get_settings, admin=True), methods=["GET"]),
        Route("/api/settings", api(_patch_settings, admin=True), methods=["PATCH"]),
        Route("/api/audit", api(_audit, admin=True)),
        Route("/api/users", api(_users, admin=True)),
    ]


async def _get_settings(request: Request, caller: Caller) -> Json:
    state = caller.school.gatekeeper.state
    return {"settings": settings_to_json(state.settings, list(state.directory.profiles))}


async def _patch_settings(request: Request, caller: Caller) -> Json:
    patch = await json_body(request)
    state = caller.school.gatekeeper.state
    profiles = list(state.directory.profiles)
    new = apply_settings_patch(state.settings, patch, profiles)
    entries = await caller.store.update_settings(
        caller.school_id, new, actor=caller.user.id, now=caller.now)
    if entries:
        await caller.node.policy_changed(caller.school_id)
    return {"settings": settings_to_json(new, profiles),
            "changes": [audit_json(e, state.directory) for e in entries]}


async def _users(request: Request, caller: Caller) -> Json:
    """The school's directory for administrators: search, filter by role, page."""
    gk = caller.school.gatekeeper
    q = fold(request.query_params.get("q", "").strip())
    role = request.query_params.get("role")
    if role is not None and role not in {r.value for r in Role}:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "'role' vaut teacher, staff, student ou parent.", params={"field": "role"})
    limit = int_param(request, "limit", CONTACTS_PAGE, 1, CONTACTS_MAX_PAGE)
    offset = decode_cursor(request.query_params.get("cursor"))
    people = sorted(gk.state.directory.users.values(),
                    key=lambda u: (fold(u.last_name), fold(u.first_name), u.id))
    query = Query.parse(q, gk.state.directory.classes)
    chosen = [u for u in people
              if (role is None or u.role.value == role) and query.finds(caller.school, u)]
    page = chosen[offset:offset + limit]
    following = offset + limit
    return {
        "items": [{**person_json(caller, u), "profile": u.profile, "admin": u.admin,
                   "preferences": preferences_to_json(gk.state.preferences_of(u.id), u.role)}
                  for u in page],
        "next_cursor": encode_cursor(following) if following < len(chosen) else None,
        "total": len(chosen),
    }


async def _audit(request: Request, caller: Caller) -> Json:
    limit = int_param(request, "limit", 50, 1, 500)
    raw = request.query_params.get("before")
    before = None if raw in (None, "") else int_param(request, "before", 0, 1, MAX_INT)
    entries = await caller.store.audit_log(caller.school_id, before=before,
                                                              limit=limit)
    directory = caller.school.gatekeeper.state.directory
    return {
        "items": [audit_json(e, directory) for e in entries],
        "next_before": entries[-1].id if len(entries) == limit else None,
    }

