"""The HTTP application: REST API, health checks, and the WebSocket endpoint ``/ws``.

This is the only module that imports Starlette. ``/ws`` adapts Starlette's
WebSocket to :class:`~server.hub.Transport` and hands it to a
:class:`~server.session.Session`; the REST endpoints answer JSON. Every endpoint authenticates
with ``Authorization: Bearer <token>`` (see :mod:`server.tokens`), asks the
gatekeeper, and answers JSON. Errors are translated here, at the boundary, into
one shape::

    {"error": {"code": "outside_hours", "message": "...", "retry_at": "2026-…Z"}}

with the HTTP status of the :class:`~server.errors.ErrorCode`. The endpoints are
documented in ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import __version__, search
from .auditwords import describe
from .broker import Broker, BrokerUnavailable, MemoryBroker, RedisBroker
from .clock import Clock, system_clock
from .config import Config
from .contacts import Query, group_views
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
from .headers import SecurityHeaders
from .hub import TransportClosed
from .jwks import build_verifier
from .limits import Limits
from .model import Directory, Role, SchoolId, User, UserId
from .mysettings import my_settings
from .node import Node
from .protocol import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    MAX_FRAME_BYTES,
    MAX_INT,
    MAX_SEARCH,
    SEARCH_PAGE,
    SUBPROTOCOLS,
    CloseCode,
    replace_surrogates,
    text_fault,
)
from .schools import Establishment, Schools, fold, person
from .session import Session
from .session_routes import SessionRoutes, credentials_json
from .sessions import Sessions
from .settings import (
    Json,
    apply_preferences_patch,
    apply_settings_patch,
    preferences_to_json,
    settings_to_json,
)
from .signin.config import load_signin_config
from .signin.routes import Signin, signin_routes
from .store import AuditEntry, Store, open_store
from .tokens import Identity, Verifier

__all__ = [
    "DEMO_SECRET_KEY",
    "MAX_BODY_BYTES",
    "UVICORN_OPTIONS",
    "PreauApp",
    "create_app",
    "resolve_secret",
]

# How uvicorn must run the app (``preau serve`` and the tests use these): frames above
# the protocol's limit are refused by the WebSocket layer (close 1009), and idle peers
# are pinged so that a dead connection is noticed within ping_interval + ping_timeout.
UVICORN_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_max_size": MAX_FRAME_BYTES,
    # No permessage-deflate: compressing per socket would undo encode-once fan-out, and
    # chat frames are small (measured: 9 % of the event loop in deflate under load).
    "ws_per_message_deflate": False,
    "ws_ping_interval": HEARTBEAT_INTERVAL,
    "ws_ping_timeout": HEARTBEAT_TIMEOUT,
    "lifespan": "on",
}

log = logging.getLogger("preau.web")

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_demo"  # the browser app
MAX_BODY_BYTES = 64 * 1024
CLOSE_TIMEOUT = 2.0  # seconds to hand a close frame to a peer before dropping the TCP connection
DEMO_SECRET_KEY = "demo_jwt_secret"
CONTACTS_PAGE = 50
CONTACTS_MAX_PAGE = 200
REST_COST = 1.0  # a REST request, from the user's allowance (a message costs 1 too)
RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 ``unavailable``
PROVIDER_TIMEOUT = 10.0  # seconds for a school's identity provider to answer Préau
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


async def resolve_secret(config: Config, store: Store) -> str:
    """The JWT secret: from the configuration, or (demo mode) kept in the database."""
    config.check()
    if config.jwt_secret is not None:
        return config.jwt_secret
    secret = await store.get_meta(DEMO_SECRET_KEY)
    if secret is None:
        secret = secrets.token_urlsafe(48)
        await store.set_meta(DEMO_SECRET_KEY, secret)
    return secret


@dataclass(slots=True)
class _Services:
    store: Store
    schools: Schools
    secret: str
    clock: Clock
    node: Node
    sessions: Sessions  # sign-in sessions: what a sign-in flow ends with (open_session)
    verifier: Verifier


@dataclass(frozen=True, slots=True)
class _Caller:
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


Endpoint = Callable[[Request, _Caller], Awaitable[Json | Created]]


def create_app(
    config: Config,
    *,
    clock: Clock = system_clock,
    store: Store | None = None,
    limits: Limits | None = None,
) -> PreauApp:
    """The ASGI application. ``store`` is opened from ``config`` unless given (and then owned)."""
    services: dict[str, _Services] = {}
    # Read at once: a mistake in the identity file stops the server before it listens.
    signin_config = load_signin_config(config.identity_file)
    signin: dict[str, Signin] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        st = await open_store(config.database_url) if store is None else store
        node: Node | None = None
        try:
            secret = await resolve_secret(config, st)
            schools = Schools(st)
            node = Node(st, _broker(config), schools, clock=clock,
                        limits=limits or config.limits(), node_id=config.node_id,
                        events_version=config.events_version)
            verifier = build_verifier(secret, config.identity_file)
            await node.start()
            sessions = Sessions(st, schools, secret=secret, ended=node.revocations.announce,
                                access_ttl=timedelta(seconds=config.token_ttl),
                                refresh_ttl=timedelta(seconds=config.refresh_ttl))
            services["s"] = _Services(st, schools, secret, clock, node, sessions, verifier)
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
                signin["s"] = Signin(signin_config, st, schools, sessions, clock, http)
                yield
        finally:
            if node is not None:
                await node.close()
            if own:
                await st.close()

    def api(endpoint: Endpoint, *, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                caller = await _authenticate(services["s"], request)
                _charge(caller)
                _check_params(request)
                if admin and not caller.school.gatekeeper.is_admin(caller.user.id):
                    raise Refused(ErrorCode.FORBIDDEN)
                result = await endpoint(request, caller)
                if isinstance(result, Created):
                    return JSONResponse(result.body, status_code=201 if result.new else 200)
                return JSONResponse(result)
            except PreauError as exc:
                return _error_response(exc)

        return route

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        """Ready when the store answers, its writes do not fail, and a probe goes through
        pub/sub and back."""
        s = services["s"]
        report = {"status": "ready", "store": "ok", "broker": "ok",
                  "connections": len(s.node.hub),
                  "discussions": sum(1 for _ in s.node.hub.discussions()),
                  "events_unreadable": s.node.events_unreadable,
                  "refresh_reuse_detected": s.sessions.reuse_detected}
        try:
            await s.store.list_schools()
        except StoreError as exc:
            report.update(status="unavailable", store=str(exc))
        else:
            failing = s.store.write_failure()
            if failing is not None:
                report.update(status="unavailable", store=f"writes failing: {failing}")
        try:
            await s.node.broker.check()
        except BrokerUnavailable as exc:
            report.update(status="unavailable", broker=str(exc))
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)

    async def demo_school(request: Request) -> Establishment:
        s = services["s"]
        wanted = request.query_params.get("school")
        schools = await s.store.list_schools()
        if wanted is None and len(schools) == 1:
            wanted = schools[0]
        if wanted is None or wanted not in schools:
            raise Refused(ErrorCode.NOT_FOUND, "Indiquez l'établissement avec ?school=.",
                          params={"field": "school"})
        return await s.schools.get(SchoolId(wanted))

    async def demo_users(request: Request) -> Response:
        """Demo mode only: everyone of the school, to pick whom to sign in as."""
        try:
            est = await demo_school(request)
        except PreauError as exc:
            return _error_response(exc)
        gk = est.gatekeeper
        users = sorted(gk.state.directory.users.values(),
                       key=lambda u: (u.role.value, u.last_name, u.first_name, u.id))
        return JSONResponse({
            "school": {"id": gk.state.directory.school.id,
                       "name": gk.state.directory.school.name},
            "users": [{**person(u, gk), "admin": u.admin, "profile": u.profile,
                       "teaches": sorted(u.teaches), "children": list(u.children)}
                      for u in users],
        })

    async def demo_token(request: Request) -> Response:
        """Demo mode only: a sign-in session for any user of the school, without a
        password (provider ``demo``): an access token and a refresh token, as every
        other way of signing in gives."""
        s = services["s"]
        try:
            est = await demo_school(request)
            body = await _json_body(request)
            user_id = body.get("user") if isinstance(body, dict) else None
            if not isinstance(user_id, str) or est.gatekeeper.user(UserId(user_id)) is None:
                raise Refused(ErrorCode.BAD_REQUEST,
                              "Donnez l'identifiant 'user' d'une personne d'ici.",
                              params={"field": "user"})
            credentials = await s.sessions.open_session(
                est.gatekeeper.state.directory.school.id, UserId(user_id), provider="demo",
                provider_session=None, now=s.clock())
        except PreauError as exc:
            return _error_response(exc)
        # "token" as before this release, for clients that read only it.
        return JSONResponse({"token": credentials.access_token,
                             **credentials_json(credentials)},
                            headers={"Cache-Control": "no-store"})

    async def websocket(ws: WebSocket) -> None:
        offered = ws.scope.get("subprotocols", [])
        encoding = next((SUBPROTOCOLS[p] for p in offered if p in SUBPROTOCOLS), None)
        if encoding is None:
            await ws.accept()
            await ws.close(CloseCode.PROTOCOL_ERROR, "offer preau.json or preau.msgpack")
            return
        await ws.accept(subprotocol=encoding.value)
        s = services["s"]
        await Session(s.node, _WebSocketTransport(ws), encoding, verifier=s.verifier).run()

    session_routes = SessionRoutes(lambda: services["s"].sessions, clock,
                                   error_response=_error_response, json_body=_json_body)
    routes = [
        Route("/healthz", healthz),
        Route("/api/session/refresh", session_routes.refresh, methods=["POST"]),
        Route("/api/session/logout", api(session_routes.logout), methods=["POST"]),
        Route("/api/users/{user_id}/sessions", api(session_routes.end_user_sessions,
                                                   admin=True), methods=["DELETE"]),
        Route("/readyz", readyz),
        WebSocketRoute("/ws", websocket),
        Route("/api/me", api(_me)),
        Route("/api/me/preferences", api(_my_preferences), methods=["GET"]),
        Route("/api/me/settings", api(_my_settings), methods=["GET"]),
        Route("/api/me/preferences", api(_patch_my_preferences), methods=["PATCH"]),
        Route("/api/contacts", api(_contacts)),
        Route("/api/search", api(_search), methods=["GET"]),
        Route("/api/settings", api(_get_settings, admin=True), methods=["GET"]),
        Route("/api/settings", api(_patch_settings, admin=True), methods=["PATCH"]),
        Route("/api/users/{user_id}/preferences", api(_user_preferences, admin=True),
              methods=["GET"]),
        Route("/api/users/{user_id}/preferences", api(_patch_user_preferences, admin=True),
              methods=["PATCH"]),
        Route("/api/audit", api(_audit, admin=True)),
        Route("/api/broadcasts", api(_broadcasts), methods=["GET"]),
        Route("/api/broadcasts", api(_create_broadcast), methods=["POST"]),
        Route("/api/broadcasts/audience", api(_broadcast_audience), methods=["GET"]),
        Route("/api/broadcasts/received", api(_broadcasts_received), methods=["GET"]),
        Route("/api/broadcasts/sent", api(_broadcasts_sent), methods=["GET"]),
        Route("/api/broadcasts/preview", api(_broadcast_preview), methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}", api(_broadcast), methods=["GET"]),
        Route("/api/broadcasts/{broadcast_id:int}/results", api(_broadcast_results),
              methods=["GET"]),
        Route("/api/broadcasts/{broadcast_id:int}/read", api(_read_broadcast),
              methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}/acknowledge", api(_acknowledge_broadcast),
              methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}/answers", api(_answer_poll),
              methods=["PUT"]),
        Route("/api/broadcasts/{broadcast_id:int}/remind", api(_remind_broadcast),
              methods=["POST"]),
        Route("/api/users", api(_users, admin=True)),
        *signin_routes(lambda: signin["s"]),
    ]
    if config.demo:
        routes += [
            Route("/api/demo/users", demo_users),
            Route("/api/demo/token", demo_token, methods=["POST"]),
        ]
    client_dir = config.client_dir or str(CLIENT_DIR)
    if os.path.isdir(client_dir):
        routes.append(Mount("/", StaticFiles(directory=client_dir, html=True), name="app"))

    async def drain(grace: float) -> None:
        s = services.get("s")
        if s is not None:
            await s.node.drain(grace)

    return PreauApp(Starlette(routes=routes, lifespan=lifespan,
                              middleware=[Middleware(SecurityHeaders)]), drain)


class PreauApp:
    """The ASGI application, plus :meth:`drain` for a graceful shutdown.

    It also remembers the server's own ``send`` for WebSockets (Starlette wraps
    it): ASGI has no way to abort a connection, and when a slow client stops
    reading, the close frame cannot be written either, so
    :class:`_WebSocketTransport` reaches the server's transport through this
    ``send`` (uvicorn's protocol object) and aborts it; without uvicorn it falls
    back to the heartbeat timeout.
    """

    def __init__(self, app: Starlette, drain: Callable[[float], Awaitable[None]]) -> None:
        self.app = app
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["preau.server_send"] = send
        await self.app(scope, receive, send)

    async def drain(self, grace: float = 5.0) -> None:
        """Tell every client to reconnect elsewhere, after its request in progress."""
        await self._drain(grace)


def _broker(config: Config) -> Broker:
    if config.redis_url:
        return RedisBroker(config.redis_url, node_id=config.node_id)
    return MemoryBroker()


class _WebSocketTransport:
    """Starlette's WebSocket as a :class:`~server.hub.Transport`."""

    __slots__ = ("_closed", "_server", "_ws")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._closed = False
        # uvicorn's protocol object (its ``send`` is a bound method), to abort with.
        self._server = getattr(ws.scope.get("preau.server_send"), "__self__", None)

    async def receive(self) -> str | bytes:
        if self._closed:
            raise TransportClosed
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            self._closed = True
            raise TransportClosed
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, data: str | bytes) -> None:
        if self._closed:
            raise TransportClosed
        message = ({"type": "websocket.send", "text": data} if isinstance(data, str)
                   else {"type": "websocket.send", "bytes": data})
        try:
            await self._ws.send(message)
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:
            self._closed = True
            raise TransportClosed from exc

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # A client that stopped reading cannot receive the close frame either.
            await asyncio.wait_for(self._ws.close(code, reason), CLOSE_TIMEOUT)
        except TimeoutError:
            transport = getattr(self._server, "transport", None)
            if transport is not None:
                transport.abort()
        except (OSError, RuntimeError, WebSocketDisconnect):
            pass


# ---------------------------------------------------------------------- boundary


async def _authenticate(services: _Services, request: Request) -> _Caller:
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
    return _Caller(identity, school, user, now, services.store, services.node)


def _charge(caller: _Caller) -> None:
    """A REST request costs its user as much as a message, from the allowance their
    connections on this node share: one account cannot flood through either door."""
    wait = caller.node.hub.allowance(caller.school_id, caller.user.id).take(REST_COST)
    if wait:
        raise Refused(ErrorCode.RATE_LIMITED,
                      retry_at=caller.now + timedelta(seconds=wait),
                      params={"limit": "requests"})


def _error_response(exc: PreauError) -> Response:
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
        body["retry_at"] = _iso(retry_at)
    headers = ({"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHENTICATED
               else {"Retry-After": str(RETRY_AFTER)} if code is ErrorCode.UNAVAILABLE
               else None)
    return JSONResponse({"error": body}, status_code=code.status, headers=headers)


async def _json_body(request: Request) -> Json:
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


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _window_json(state: WindowState) -> dict[str, Json]:
    return {
        "open": state.is_open,
        "opens_at": None if state.opens_at is None else _iso(state.opens_at),
        "closes_at": None if state.closes_at is None else _iso(state.closes_at),
    }


def _person(caller: _Caller, user: User) -> dict[str, Json]:
    """A user as others see them: no preferences, nothing of other people."""
    return person(user, caller.school.gatekeeper)


# ---------------------------------------------------------------------- endpoints


async def _me(request: Request, caller: _Caller) -> Json:
    gk = caller.school.gatekeeper
    access = gk.check_connect(caller.user.id)
    contacts = gk.check_contacts(caller.user.id) if access.allowed else access
    return {
        "user": _person(caller, caller.user),
        "school": {"id": caller.school_id, "name": gk.state.directory.school.name,
                   "timezone": gk.state.settings.timezone},
        "admin": gk.is_admin(caller.user.id),
        "access": {"allowed": access.allowed,
                   "code": None if access.code is None else access.code.value,
                   "message": access.message,
                   "params": {} if access.code is None
                   else wire_params(access.code, access.params)},
        "can_start": contacts.allowed,
        "window": _window_json(gk.window_state(caller.now)),
        "token_expires_at": _iso(caller.identity.expires_at),
    }


async def _my_settings(request: Request, caller: _Caller) -> Json:
    """What applies to me (server/mysettings.py), for the "Mes réglages" page."""
    gk = caller.school.gatekeeper
    access = gk.check_connect(caller.user.id)
    contacts = gk.check_contacts(caller.user.id) if access.allowed else access
    return my_settings(gk.state, caller.user, can_start=contacts.allowed, access={
        "allowed": access.allowed, "code": None if access.code is None else access.code.value,
        "message": access.message})


async def _contacts(request: Request, caller: _Caller) -> Json:
    """The people the caller may start a discussion with (G1–G5), searchable and paged."""
    gk = caller.school.gatekeeper
    gk.check_contacts(caller.user.id).raise_for_refusal()
    est = caller.school
    query = Query.parse(request.query_params.get("q", ""), gk.state.directory.classes)
    limit = _int_param(request, "limit", CONTACTS_PAGE, 1, CONTACTS_MAX_PAGE)
    offset = _decode_cursor(request.query_params.get("cursor"))
    people = gk.contacts(caller.user.id)
    if not query.empty:
        people = tuple(u for u in people if query.finds(est, u))
    page = people[offset:offset + limit]
    following = offset + limit
    classes = gk.state.directory.classes
    return {
        "items": [_person(caller, u) for u in page],
        "next_cursor": _encode_cursor(following) if following < len(people) else None,
        "total": len(people),
        # The groups of classes the caller may address in a start (server.contacts),
        # all on every page: there are a few per class at most.
        "groups": [view for group, view in group_views(est, caller.user.id)
                   if query.finds_group(group, classes[group.class_id].name)],
        "window": _window_json(gk.window_state(caller.now)),
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(ErrorCode.BAD_REQUEST,
                      f"'{name}' doit être un entier de {low} à {high}.",
                      params={"field": name, "min": low, "max": high})
    return int(raw)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
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


async def _my_preferences(request: Request, caller: _Caller) -> Json:
    prefs = caller.school.gatekeeper.state.preferences_of(caller.user.id)
    return {"preferences": preferences_to_json(prefs, caller.user.role)}


async def _patch_my_preferences(request: Request, caller: _Caller) -> Json:
    patch = await _json_body(request)
    if isinstance(patch, dict) and "can_initiate" in patch:
        raise Refused(ErrorCode.FORBIDDEN,
                      "Seul un administrateur peut décider si un élève peut commencer des "
                      "discussions.", params={"field": "can_initiate"})
    return await _change_preferences(caller, caller.user, patch,
                                     allowed={"accepts", "parent_messaging_opt_in"})


async def _user_preferences(request: Request, caller: _Caller) -> Json:
    user = _directory_user(caller, request.path_params["user_id"])
    prefs = caller.school.gatekeeper.state.preferences_of(user.id)
    return {"user": _person(caller, user),
            "preferences": preferences_to_json(prefs, user.role)}


async def _patch_user_preferences(request: Request, caller: _Caller) -> Json:
    user = _directory_user(caller, request.path_params["user_id"])
    patch = await _json_body(request)
    return await _change_preferences(caller, user, patch, allowed={"can_initiate"})


def _directory_user(caller: _Caller, user_id: str) -> User:
    user = caller.school.gatekeeper.user(UserId(user_id))
    if user is None:
        raise Refused(ErrorCode.NOT_FOUND,
                      f"Il n'y a pas d'utilisateur {user_id!r} dans cet établissement.",
                      params={"user": user_id})
    return user


async def _change_preferences(
    caller: _Caller, user: User, patch: Json, *, allowed: set[str]
) -> Json:
    state = caller.school.gatekeeper.state
    new = apply_preferences_patch(state.preferences_of(user.id), user.role, patch,
                                  classes=state.directory.classes, allowed=allowed)
    entries = await caller.store.update_preferences(
        caller.school_id, user.id, new, actor=caller.user.id, now=caller.now)
    if entries:
        await caller.node.policy_changed(caller.school_id)
    return {"preferences": preferences_to_json(new, user.role),
            "changes": [_audit_json(e, state.directory) for e in entries]}


async def _get_settings(request: Request, caller: _Caller) -> Json:
    state = caller.school.gatekeeper.state
    return {"settings": settings_to_json(state.settings, list(state.directory.profiles))}


async def _patch_settings(request: Request, caller: _Caller) -> Json:
    patch = await _json_body(request)
    state = caller.school.gatekeeper.state
    profiles = list(state.directory.profiles)
    new = apply_settings_patch(state.settings, patch, profiles)
    entries = await caller.store.update_settings(
        caller.school_id, new, actor=caller.user.id, now=caller.now)
    if entries:
        await caller.node.policy_changed(caller.school_id)
    return {"settings": settings_to_json(new, profiles),
            "changes": [_audit_json(e, state.directory) for e in entries]}


async def _users(request: Request, caller: _Caller) -> Json:
    """The school's directory for administrators: search, filter by role, page."""
    gk = caller.school.gatekeeper
    q = fold(request.query_params.get("q", "").strip())
    role = request.query_params.get("role")
    if role is not None and role not in {r.value for r in Role}:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "'role' vaut teacher, staff, student ou parent.", params={"field": "role"})
    limit = _int_param(request, "limit", CONTACTS_PAGE, 1, CONTACTS_MAX_PAGE)
    offset = _decode_cursor(request.query_params.get("cursor"))
    people = sorted(gk.state.directory.users.values(),
                    key=lambda u: (fold(u.last_name), fold(u.first_name), u.id))
    query = Query.parse(q, gk.state.directory.classes)
    chosen = [u for u in people
              if (role is None or u.role.value == role) and query.finds(caller.school, u)]
    page = chosen[offset:offset + limit]
    following = offset + limit
    return {
        "items": [{**_person(caller, u), "profile": u.profile, "admin": u.admin,
                   "preferences": preferences_to_json(gk.state.preferences_of(u.id), u.role)}
                  for u in page],
        "next_cursor": _encode_cursor(following) if following < len(chosen) else None,
        "total": len(chosen),
    }


async def _audit(request: Request, caller: _Caller) -> Json:
    limit = _int_param(request, "limit", 50, 1, 500)
    raw = request.query_params.get("before")
    before = None if raw in (None, "") else _int_param(request, "before", 0, 1, MAX_INT)
    entries = await caller.store.audit_log(caller.school_id, before=before,
                                                              limit=limit)
    directory = caller.school.gatekeeper.state.directory
    return {
        "items": [_audit_json(e, directory) for e in entries],
        "next_before": entries[-1].id if len(entries) == limit else None,
    }


def _audit_json(entry: AuditEntry, directory: Directory | None = None) -> dict[str, Any]:
    """An audit entry; with the directory, also what it is about in structured words
    (``setting``, ``profile``/``user``, ``classes``, ``actor_name``: docs/api.md)."""
    out = {"id": entry.id, "at": _iso(entry.at), "actor": entry.actor, "field": entry.field,
           "old": entry.old, "new": entry.new}
    if directory is not None:
        out.update(describe(entry.field, entry.old, entry.new, entry.actor, directory))
    return out


async def _search(request: Request, caller: _Caller) -> Json:
    """GET /api/search?q=&cursor=&limit= (server/search.py; the ``search`` frame's twin)."""
    params = request.query_params
    limit = _int_param(request, "limit", SEARCH_PAGE, 1, MAX_SEARCH)
    # As much as the same search through the WebSocket: REST_COST is already taken.
    wait = caller.node.hub.allowance(caller.school_id, caller.user.id).take(
        search.cost(limit) - REST_COST)
    if wait:
        raise Refused(ErrorCode.RATE_LIMITED, retry_at=caller.now + timedelta(seconds=wait))
    results, after = await search.page(caller.store, caller.school_id, caller.user.id,
                                       params.get("q", ""), params.get("cursor") or None, limit)
    return {"results": results, "more": after is not None, "next": after}


# ---------------------------------------------------------------------- broadcasts


async def _broadcasts(request: Request, caller: _Caller) -> Json:
    return await caller.node.noticeboard.listing(caller.school_id, caller.user.id)


async def _broadcasts_received(request: Request, caller: _Caller) -> Json:
    items, after = await caller.node.noticeboard.received_page(
        caller.school_id, caller.user.id, _before_param(request),
        _int_param(request, "limit", 100, 1, 200))
    return {"items": items, "more": after is not None, "next": after}


async def _broadcasts_sent(request: Request, caller: _Caller) -> Json:
    items, after = await caller.node.noticeboard.sent_page(
        caller.school_id, caller.user.id, _before_param(request),
        _int_param(request, "limit", 100, 1, 200))
    return {"items": items, "more": after is not None, "next": after}


def _before_param(request: Request) -> str | None:
    raw = request.query_params.get("before")
    return None if raw in (None, "") else raw


async def _create_broadcast(request: Request, caller: _Caller) -> Created:
    view, new = await caller.node.noticeboard.create(caller.school_id, caller.user.id,
                                                     await _json_body(request))
    return Created({"broadcast": view}, new)


async def _broadcast_audience(request: Request, caller: _Caller) -> Json:
    q = request.query_params.get("q")
    return await caller.node.noticeboard.scope(caller.school_id, caller.user.id,
                                               q.strip() if q is not None else None)


async def _broadcast_preview(request: Request, caller: _Caller) -> Json:
    body = await _json_body(request)
    if not isinstance(body, dict) or "to" not in body:
        raise Refused(ErrorCode.BAD_REQUEST, "Envoyez {\"to\": {...}} : le public à compter.",
                      params={"field": "to"})
    return await caller.node.noticeboard.preview(caller.school_id, caller.user.id, body["to"])


def _broadcast_id(request: Request) -> int:
    value = int(request.path_params["broadcast_id"])
    if value > MAX_INT:  # no row can have it, and SQLite would refuse to compare it
        raise NotFound(f"no broadcast {value} for you")  # the words of every other miss
    return value


async def _broadcast(request: Request, caller: _Caller) -> Json:
    view = await caller.node.noticeboard.view(caller.school_id, caller.user.id,
                                              _broadcast_id(request))
    return {"broadcast": view}


async def _broadcast_results(request: Request, caller: _Caller) -> Json:
    return await caller.node.noticeboard.results(caller.school_id, caller.user.id,
                                                 _broadcast_id(request))


async def _read_broadcast(request: Request, caller: _Caller) -> Json:
    view = await caller.node.noticeboard.mark_read(caller.school_id, caller.user.id,
                                                   _broadcast_id(request), acknowledge=False)
    return {"broadcast": view}


async def _acknowledge_broadcast(request: Request, caller: _Caller) -> Json:
    view = await caller.node.noticeboard.mark_read(caller.school_id, caller.user.id,
                                                   _broadcast_id(request), acknowledge=True)
    return {"broadcast": view}


async def _answer_poll(request: Request, caller: _Caller) -> Json:
    body = await _json_body(request)
    if not isinstance(body, dict) or "answers" not in body:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "Envoyez {\"answers\": [...]} : une réponse par question.",
                      params={"field": "answers"})
    view = await caller.node.noticeboard.answer(caller.school_id, caller.user.id,
                                                _broadcast_id(request), body["answers"])
    return {"broadcast": view}


async def _remind_broadcast(request: Request, caller: _Caller) -> Json:
    return await caller.node.noticeboard.remind(caller.school_id, caller.user.id,
                                                _broadcast_id(request))
