"""The plumbing every REST route shares: who is calling, the ``api()`` wrapper, errors.

A route module (``server/routes_*.py``) writes an :data:`Endpoint`, a coroutine that takes
the request and the authenticated :class:`Caller` and returns JSON (or :class:`Created`);
:func:`rest_api` gives the ``api()`` that wraps it into a Starlette handler. The wrapper
authenticates ``Authorization: Bearer <token>`` (see :mod:`server.tokens`), charges the
user's allowance, checks the query and path parameters, refuses non-administrators on
``admin`` routes, and translates every error, at the boundary, into one shape::

    {"error": {"code": "outside_hours", "message": "...", "retry_at": "2026-…Z"}}

with the HTTP status of the :class:`~server.errors.ErrorCode`. Also here: reading a JSON
body, integer parameters, page cursors, and the JSON of dates, windows, people and audit
entries. This module imports no route module and not :mod:`server.web`, which builds the
:class:`Services` and mounts the routes.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

from .auditwords import describe
from .clock import Clock
from .errors import (
    ErrorCode,
    InvalidSettings,
    NotFound,
    PreauError,
    Refused,
    StoreError,
    UnstorableValue,
    wire_params,
)
from .gatekeeper import WindowState
from .model import Directory, SchoolId, User
from .node import Node
from .protocol import replace_surrogates, text_fault
from .schools import Establishment, Schools, person
from .sessions import Sessions
from .settings import Json
from .store import AuditEntry, Store
from .tokens import Identity, Verifier

__all__ = [
    "CONTACTS_MAX_PAGE",
    "CONTACTS_PAGE",
    "MAX_BODY_BYTES",
    "REST_COST",
    "Api",
    "Caller",
    "Created",
    "Endpoint",
    "JSONResponse",
    "Services",
    "audit_json",
    "decode_cursor",
    "encode_cursor",
    "error_response",
    "int_param",
    "iso",
    "json_body",
    "person_json",
    "rest_api",
    "window_json",
]

log = logging.getLogger("preau.web")

MAX_BODY_BYTES = 64 * 1024
CONTACTS_PAGE = 50
CONTACTS_MAX_PAGE = 200
REST_COST = 1.0  # a REST request, from the user's allowance (a message costs 1 too)
RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 ``unavailable``
MAX_PARAM_CHARS = 200  # a query or path parameter: a search, an id, a cursor


class JSONResponse(StarletteJSONResponse):
    """Starlette's JSON response that never fails on a value read back from the store.

    A lone surrogate stored before the boundary refused them (see
    :func:`server.protocol.text_fault`) goes out as U+FFFD instead of a 500.
    """

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return replace_surrogates(text).encode("utf-8")


@dataclass(slots=True)
class Services:
    """What the app's lifespan opens (:func:`server.web.create_app`), for the routes."""

    store: Store
    schools: Schools
    secret: str
    clock: Clock
    node: Node
    sessions: Sessions  # sign-in sessions: what a sign-in flow ends with (open_session)
    verifier: Verifier


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: who, in which school, under which snapshot."""

    identity: Identity
    school: Establishment
    user: User
    now: datetime
    store: Store
    node: Node

    @property
    def school_id(self) -> SchoolId:
        return self.identity.school_id


@dataclass(frozen=True, slots=True)
class Created:
    """An endpoint's answer to an idempotent creation: 201 if ``new``, else 200."""

    body: Json
    new: bool


Endpoint = Callable[[Request, Caller], Awaitable[Json | Created]]
Handler = Callable[[Request], Awaitable[Response]]


class Api(Protocol):
    """``api(endpoint, admin=…)``: an :data:`Endpoint` as a Starlette handler."""

    def __call__(self, endpoint: Endpoint, *, admin: bool = False) -> Handler: ...


def rest_api(services: Callable[[], Services]) -> Api:
    """The ``api()`` wrapper of the routes, over the services the app's lifespan opens
    (``services`` is called per request: they exist only once the app has started)."""

    def api(endpoint: Endpoint, *, admin: bool = False) -> Handler:
        async def route(request: Request) -> Response:
            try:
                caller = await _authenticate(services(), request)
                _charge(caller)
                _check_params(request)
                if admin and not caller.school.gatekeeper.is_admin(caller.user.id):
                    raise Refused(ErrorCode.FORBIDDEN)
                result = await endpoint(request, caller)
                if isinstance(result, Created):
                    return JSONResponse(result.body, status_code=201 if result.new else 200)
                return JSONResponse(result)
            except PreauError as exc:
                return error_response(exc)

        return route

    return api


async def _authenticate(services: Services, request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(ErrorCode.UNAUTHENTICATED,
                      "Envoyez le jeton ainsi : 'Authorization: Bearer <jeton>'.",
                      params={"reason": "missing"})
    now = services.clock()
    identity = await services.verifier.verify(token.strip(), now)
    try:
        school = await services.schools.get(identity.school_id)
    except NotFound:
        raise Refused(ErrorCode.UNAUTHENTICATED, "Le jeton désigne un établissement inconnu.",
                      params={"reason": "unknown_school"}) from None
    if identity.session_id is not None:  # an ended session's token is refused (cached)
        await services.node.revocations.check(identity.school_id, identity.session_id)
    user = school.gatekeeper.user(identity.user_id)
    if user is None:
        raise Refused(ErrorCode.UNAUTHENTICATED,
                      "Ce compte n'est pas dans l'annuaire de l'établissement.",
                      params={"reason": "not_in_directory"})
    return Caller(identity, school, user, now, services.store, services.node)


def _charge(caller: Caller) -> None:
    """A REST request costs its user as much as a message, from the allowance their
    connections on this node share: one account cannot flood through either door."""
    wait = caller.node.hub.allowance(caller.school_id, caller.user.id).take(REST_COST)
    if wait:
        raise Refused(ErrorCode.RATE_LIMITED,
                      retry_at=caller.now + timedelta(seconds=wait),
                      params={"limit": "requests"})


def error_response(exc: PreauError) -> Response:
    params: Mapping[str, Any] | None = None
    if isinstance(exc, Refused):
        code, message, retry_at, params = exc.code, exc.message, exc.retry_at, exc.params
    elif isinstance(exc, InvalidSettings):
        code, message, retry_at = ErrorCode.BAD_REQUEST, str(exc), None
        params = {} if exc.field is None else {"field": exc.field}
    elif isinstance(exc, NotFound):
        # The store's words name ids and tables, for logs: people get the phrase (the
        # same for "does not exist" and "not yours": no oracle either way).
        code, message, retry_at = ErrorCode.NOT_FOUND, ErrorCode.NOT_FOUND.phrase, None
    elif isinstance(exc, UnstorableValue):
        code, message, retry_at = ErrorCode.BAD_REQUEST, str(exc), None
    elif isinstance(exc, StoreError) and exc.retryable:
        # The database is busy, full or unreachable: nothing was stored; retry later.
        log.warning("store unavailable: %s", exc)
        code, message, retry_at = ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.phrase, None
    else:
        log.exception("request failed", exc_info=exc)
        code, message, retry_at = ErrorCode.INTERNAL, ErrorCode.INTERNAL.phrase, None
    body: dict[str, Json] = {"code": code.value, "message": message,
                             "params": wire_params(code, params, retry_at)}
    if retry_at is not None:
        body["retry_at"] = iso(retry_at)
    headers = ({"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHENTICATED
               else {"Retry-After": str(RETRY_AFTER)} if code is ErrorCode.UNAVAILABLE
               else None)
    return JSONResponse({"error": body}, status_code=code.status, headers=headers)


async def json_body(request: Request) -> Json:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(ErrorCode.TOO_LARGE, f"Le corps dépasse {MAX_BODY_BYTES} octets.",
                      params={"field": "body", "max_bytes": MAX_BODY_BYTES})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(ErrorCode.TOO_LARGE, f"Le corps dépasse {MAX_BODY_BYTES} octets.",
                          params={"field": "body", "max_bytes": MAX_BODY_BYTES})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise Refused(ErrorCode.BAD_REQUEST, "La requête doit avoir un corps JSON.",
                      params={"field": "body"})
    try:
        # ValueError also covers an integer of more than 4,300 digits (Python's limit).
        body: Json = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Refused(ErrorCode.BAD_REQUEST, f"Le corps n'est pas du JSON valide : {exc}.",
                      params={"field": "body"}) from None
    _check_strings(body)
    return body


def _check_strings(body: Json) -> None:
    """Every string of a JSON body, keys included, is storable text (see
    :func:`~server.protocol.text_fault`): one check here covers every endpoint.

    Iterative: json.loads accepts nesting close to the recursion limit."""
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            fault = text_fault(value)
            if fault is not None:
                raise Refused(ErrorCode.BAD_REQUEST, f"Une chaîne du corps : {fault}.",
                              params={"field": "body"})
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _check_params(request: Request) -> None:
    """Query and path parameters are short, storable text (URL decoding replaces bad
    UTF-8, but ``%00`` still gives a NUL)."""
    params = [*request.query_params.multi_items(), *request.path_params.items()]
    for name, value in params:
        if not isinstance(value, str):
            continue  # converted by the route, e.g. {broadcast_id:int}
        if len(value) > MAX_PARAM_CHARS:
            raise Refused(ErrorCode.BAD_REQUEST,
                          f"'{name[:32]}' est limité à {MAX_PARAM_CHARS} caractères.",
                          params={"field": name[:32], "max_chars": MAX_PARAM_CHARS})
        fault = text_fault(value) or text_fault(name)
        if fault is not None:
            raise Refused(ErrorCode.BAD_REQUEST, f"Un paramètre de l'adresse : {fault}.",
                          params={"field": name[:32]})


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def window_json(state: WindowState) -> dict[str, Json]:
    return {
        "open": state.is_open,
        "opens_at": None if state.opens_at is None else iso(state.opens_at),
        "closes_at": None if state.closes_at is None else iso(state.closes_at),
    }


def person_json(caller: Caller, user: User) -> dict[str, Json]:
    """A user as others see them: no preferences, nothing of other people."""
    return person(user, caller.school.gatekeeper)



def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(ErrorCode.BAD_REQUEST,
                      f"'{name}' doit être un entier de {low} à {high}.",
                      params={"field": name, "min": low, "max": high})
    return int(raw)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw[:1] != "o" or not raw[1:].isdigit():
            raise ValueError(raw)
        return int(raw[1:])
    except ValueError:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "'cursor' n'est pas un curseur donné par ce serveur.",
                      params={"field": "cursor"}) from None



def audit_json(entry: AuditEntry, directory: Directory | None = None) -> dict[str, Any]:
    """An audit entry; with the directory, also what it is about in structured words
    (``setting``, ``profile``/``user``, ``classes``, ``actor_name``: docs/api.md)."""
    out = {"id": entry.id, "at": iso(entry.at), "actor": entry.actor, "field": entry.field,
           "old": entry.old, "new": entry.new}
    if directory is not None:
        out.update(describe(entry.field, entry.old, entry.new, entry.actor, directory))
    return out

