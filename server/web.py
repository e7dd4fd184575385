"""The HTTP application: the app factory, its lifespan, health checks, the WebSocket
endpoint ``/ws``, and the table of routes.

``/ws`` adapts Starlette's WebSocket to :class:`~server.hub.Transport` and hands it to a
:class:`~server.session.Session`. The REST routes live in modules of their own, by
concept (``server/routes_*.py``, :mod:`server.session_routes`, :mod:`server.signin`),
over the shared plumbing of :mod:`server.rest` (authentication, the ``api()`` wrapper,
the one shape of errors); this module opens the services they use and mounts them. The
endpoints are documented in ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import __version__
from .broker import Broker, BrokerUnavailable, MemoryBroker, RedisBroker
from .clock import Clock, system_clock
from .config import Config
from .errors import ErrorCode, PreauError, Refused, StoreError
from .headers import SecurityHeaders
from .hub import TransportClosed
from .jwks import build_verifier
from .limits import Limits
from .model import SchoolId, UserId
from .node import Node
from .protocol import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    MAX_FRAME_BYTES,
    SUBPROTOCOLS,
    CloseCode,
)
from .rest import MAX_BODY_BYTES, JSONResponse, Services, error_response, json_body, rest_api
from .routes_admin import admin_routes
from .routes_broadcasts import broadcasts_routes
from .routes_me import me_routes
from .routes_preferences import preferences_routes
from .schools import Establishment, Schools, person
from .session import Session
from .session_routes import SessionRoutes, credentials_json
from .sessions import Sessions
from .signin.config import load_signin_config
from .signin.routes import Signin, signin_routes
from .store import Store, open_store

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

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_demo"  # the browser app
CLOSE_TIMEOUT = 2.0  # seconds to hand a close frame to a peer before dropping the TCP connection
DEMO_SECRET_KEY = "demo_jwt_secret"
PROVIDER_TIMEOUT = 10.0  # seconds for a school's identity provider to answer Préau


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


def create_app(
    config: Config,
    *,
    clock: Clock = system_clock,
    store: Store | None = None,
    limits: Limits | None = None,
) -> PreauApp:
    """The ASGI application. ``store`` is opened from ``config`` unless given (and then owned)."""
    services: dict[str, Services] = {}
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
            services["s"] = Services(st, schools, secret, clock, node, sessions, verifier)
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
                signin["s"] = Signin(signin_config, st, schools, sessions, clock, http)
                yield
        finally:
            if node is not None:
                await node.close()
            if own:
                await st.close()

    # Wraps the REST endpoints: authenticates, charges, checks, translates errors.
    api = rest_api(lambda: services["s"])

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
            return error_response(exc)
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
            body = await json_body(request)
            user_id = body.get("user") if isinstance(body, dict) else None
            if not isinstance(user_id, str) or est.gatekeeper.user(UserId(user_id)) is None:
                raise Refused(ErrorCode.BAD_REQUEST,
                              "Donnez l'identifiant 'user' d'une personne d'ici.",
                              params={"field": "user"})
            credentials = await s.sessions.open_session(
                est.gatekeeper.state.directory.school.id, UserId(user_id), provider="demo",
                provider_session=None, now=s.clock())
        except PreauError as exc:
            return error_response(exc)
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
                                   error_response=error_response, json_body=json_body)
    routes = [
        Route("/healthz", healthz),
        Route("/api/session/refresh", session_routes.refresh, methods=["POST"]),
        Route("/api/session/logout", api(session_routes.logout), methods=["POST"]),
        Route("/api/users/{user_id}/sessions", api(session_routes.end_user_sessions,
                                                   admin=True), methods=["DELETE"]),
        Route("/readyz", readyz),
        WebSocketRoute("/ws", websocket),
        *me_routes(api),
        *preferences_routes(api),
        *admin_routes(api),
        *broadcasts_routes(api),
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


