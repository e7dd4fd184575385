"""The REST routes of preferences: the user's own (``/api/me/preferences``) and, for
administrators, anyone's (``/api/users/{user_id}/preferences``).

Mounted by :mod:`server.web` through :func:`preferences_routes`; documented in
``docs/api.md``. A change is stored with its audit entries, and the node told that the
school's policy changed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from .errors import ErrorCode, Refused
from .model import User, UserId
from .rest import Api, Caller, audit_json, json_body, person_json
from .settings import Json, apply_preferences_patch, preferences_to_json

__all__ = ["preferences_routes"]


def preferences_routes(api: Api) -> list[Route]:
    return [
        Route("/api/me/preferences", api(_my_preferences), methods=["GET"]),
        Route("/api/me/preferences", api(_patch_my_preferences), methods=["PATCH"]),
        Route("/api/users/{user_id}/preferences", api(_user_preferences, admin=True),
              methods=["GET"]),
        Route("/api/users/{user_id}/preferences", api(_patch_user_preferences, admin=True),
              methods=["PATCH"]),
    ]


async def _my_preferences(request: Request, caller: Caller) -> Json:
    prefs = caller.school.gatekeeper.state.preferences_of(caller.user.id)
    return {"preferences": preferences_to_json(prefs, caller.user.role)}


async def _patch_my_preferences(request: Request, caller: Caller) -> Json:
    patch = await json_body(request)
    if isinstance(patch, dict) and "can_initiate" in patch:
        raise Refused(ErrorCode.FORBIDDEN,
                      "Seul un administrateur peut décider si un élève peut commencer des "
                      "discussions.", params={"field": "can_initiate"})
    return await _change_preferences(caller, caller.user, patch,
                                     allowed={"accepts", "parent_messaging_opt_in"})


async def _user_preferences(request: Request, caller: Caller) -> Json:
    user = _directory_user(caller, request.path_params["user_id"])
    prefs = caller.school.gatekeeper.state.preferences_of(user.id)
    return {"user": person_json(caller, user),
            "preferences": preferences_to_json(prefs, user.role)}


async def _patch_user_preferences(request: Request, caller: Caller) -> Json:
    user = _directory_user(caller, request.path_params["user_id"])
    patch = await json_body(request)
    return await _change_preferences(caller, user, patch, allowed={"can_initiate"})


def _directory_user(caller: Caller, user_id: str) -> User:
    user = caller.school.gatekeeper.user(UserId(user_id))
    if user is None:
        raise Refused(ErrorCode.NOT_FOUND,
                      f"Il n'y a pas d'utilisateur {user_id!r} dans cet établissement.",
                      params={"user": user_id})
    return user


async def _change_preferences(
    caller: Caller, user: User, patch: Json, *, allowed: set[str]
) -> Json:
    state = caller.school.gatekeeper.state
    new = apply_preferences_patch(state.preferences_of(user.id), user.role, patch,
                                  classes=state.directory.classes, allowed=allowed)
    entries = await caller.store.update_preferences(
        caller.school_id, user.id, new, actor=caller.user.id, now=caller.now)
    if entries:
        await caller.node.policy_changed(caller.school_id)
    return {"preferences": preferences_to_json(new, user.role),
            "changes": [audit_json(e, state.directory) for e in entries]}
