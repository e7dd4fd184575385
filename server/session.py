"""One connection: authenticate, then read requests and answer them, in order.

A :class:`Session` is framework-free: it reads and writes through a
:class:`~server.hub.Transport` and asks the :class:`~server.node.Node` to do the
work. Its life::

    AWAITING_HELLO --hello ok--> OPEN --peer gone / closed--> CLOSED

Requests of one connection are served one at a time, in the order received, so
a client's sends are stored in the order it made them. What reaches the client
goes through the session's :class:`~server.hub.Outbox` (bounded, one writer).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import frames, search
from .broker import BrokerUnavailable
from .errors import ErrorCode, NotFound, Refused, StoreError, UnstorableValue
from .hub import Allowance, Frame, Outbox, Transport, TransportClosed
from .model import DiscussionId, SchoolId, UserId
from .node import Node
from .protocol import (
    HEARTBEAT_INTERVAL,
    PROTOCOL_VERSION,
    CloseCode,
    Encoding,
    FrameError,
    History,
    Invite,
    Leave,
    ListDiscussions,
    Ping,
    Read,
    Refresh,
    Request,
    Search,
    Send,
    Start,
    Typing,
    close_reason,
    decode,
    parse_hello,
    parse_request,
)
from .schools import person
from .store import StoredMessage
from .tokens import Verifier, warning_time

__all__ = ["MAX_BAD_FRAMES", "Session", "SessionState"]

log = logging.getLogger("preau.session")

MAX_BAD_FRAMES = 10  # consecutive malformed frames before the connection is closed

# What each request costs from its user's allowance (``rate_per_second`` tokens a
# second, shared by the user's connections on the node). A message is 1; what reads
# pages from the store costs more, what only touches memory less. Nothing is free:
# 50,000 reads or lists in ten seconds must be refused, not served at others' expense.
COSTS: dict[type, float] = {
    Send: 1.0, Start: 4.0, Invite: 2.0, Leave: 1.0, Read: 0.5, Typing: 0.5, Ping: 0.25,
    Refresh: 2.0,
}
LIST_COST = 2.0  # plus one per 25 discussions asked for
HISTORY_COST = 1.0  # plus one per 50 messages asked for
BAD_FRAME_COST = 1.0


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


class Session:
    """Session is responsible for one client connection's requests and deliveries."""

    __slots__ = ("_allowance", "_busy", "_catching", "_closing", "_held",
                 "_leave_after_request", "_pause", "_positions", "_verifier", "_warn_at",
                 "encoding", "expires_at", "node", "outbox", "school_id", "session_id", "state",
                 "transport", "user_id")

    def __init__(self, node: Node, transport: Transport, encoding: Encoding, *,
                 verifier: Verifier) -> None:
        self.node = node
        self.transport = transport
        self.encoding = encoding
        self.state = SessionState.AWAITING_HELLO
        self.outbox = Outbox(transport, node.limits.outbox_bytes)
        self.school_id = SchoolId("")
        self.user_id = UserId("")
        self.expires_at = datetime.max
        self.session_id: str | None = None  # the token's sign-in session (``sid``)
        # When to send ``token_expiring`` (None: sent already, for the current token).
        self._warn_at: datetime | None = None
        self._verifier = verifier
        self._positions: dict[DiscussionId, int] = {}
        self._catching: dict[DiscussionId, list[tuple[int, Frame | None]]] = {}
        self._held: list[Frame] | None = []  # frames waiting for the welcome
        self._closing: asyncio.Task[None] | None = None
        self._busy = False
        self._leave_after_request = False
        # The user's allowance once attached (shared with their other connections here).
        self._allowance: Allowance | None = None
        self._pause = 0.0  # seconds not to read this connection: its user is over the rate

    # ------------------------------------------------------------------ Member

    def deliver(self, discussion: DiscussionId, seq: int, frame: Frame | None) -> None:
        catching = self._catching.get(discussion)
        if catching is not None:
            catching.append((seq, frame))
            return
        if seq > self._positions.get(discussion, 0):
            self._positions[discussion] = seq
            # A message hidden from this user (docs/policy.md, the invariant): the seq
            # is passed over, and said so, so that the stream stays gap-free.
            self.push(frame if frame is not None else Frame(frames.skipped(discussion, seq)))

    def push(self, frame: Frame) -> None:
        if self._held is not None:
            self._held.append(frame)
        else:
            self.outbox.put(frame.data(self.encoding))

    def begin_catchup(self, discussion: DiscussionId) -> None:
        self._catching[discussion] = []

    def end_catchup(self, discussion: DiscussionId, position: int,
                    messages: Sequence[StoredMessage]) -> None:
        buffered = self._catching.pop(discussion, None)
        if buffered is None:
            return  # forgotten meanwhile (left, or the connection went away)
        self._positions[discussion] = position
        for msg in messages:
            hidden = self.user_id in msg.hidden_from
            self.deliver(discussion, msg.seq, None if hidden else Frame(frames.message(msg)))
        for seq, frame in buffered:
            self.deliver(discussion, seq, frame)

    def forget(self, discussion: DiscussionId) -> None:
        self._positions.pop(discussion, None)
        self._catching.pop(discussion, None)

    @property
    def subscribed(self) -> Iterable[DiscussionId]:
        return [*self._positions, *self._catching]

    @property
    def open(self) -> bool:
        return self.state is SessionState.OPEN

    def shutdown(self) -> None:
        if self._busy:
            self._leave_after_request = True
        else:
            self._go_elsewhere()

    def _go_elsewhere(self) -> None:
        self.push(Frame(frames.reconnect("server shutting down")))
        self.close(CloseCode.SHUTDOWN, "server shutting down: reconnect")

    def close(self, code: int, reason: str) -> None:
        """Close after sending what is queued (callable from sync code)."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._held = None
        self._closing = asyncio.get_running_loop().create_task(self.outbox.close(code, reason))

    # ------------------------------------------------------------------ life

    async def run(self) -> None:
        """Serve the connection until the peer leaves or the session is closed."""
        attached = False
        try:
            if not await self._hello():
                return
            attached = True
            await self._serve_requests()
        except TransportClosed:
            pass
        except Exception:
            # A bug must cost one connection, never the process or other clients.
            log.exception("session of %s/%s failed", self.school_id, self.user_id)
            self.close(CloseCode.INTERNAL, "internal error")
        finally:
            self.state = SessionState.CLOSED
            try:
                if attached:
                    await self.node.detach(self)
            except Exception:
                log.exception("detaching %s/%s failed", self.school_id, self.user_id)
            finally:
                if self._closing is not None:
                    await self._closing  # flush what is queued, then the close frame
                await self.outbox.stop()

    async def _hello(self) -> bool:
        limits = self.node.limits
        try:
            raw = await asyncio.wait_for(self.transport.receive(), limits.hello_timeout)
        except TimeoutError:
            await self._refuse(ErrorCode.UNAUTHENTICATED, "Aucun « hello » reçu à temps.",
                               CloseCode.HELLO_TIMEOUT,
                               {"reason": "hello_timeout",
                                "seconds": limits.hello_timeout},
                               close_text="no hello in time")
            return False
        try:
            hello = parse_hello(decode(raw, self.encoding))
            now = self.node.clock()
            identity = await self._verifier.verify(hello.token, now)
            try:
                est = await self.node.schools.get(identity.school_id)
            except NotFound:
                raise Refused(ErrorCode.UNAUTHENTICATED,
                              "Le jeton désigne un établissement inconnu.",
                              params={"reason": "unknown_school"}) from None
            if identity.session_id is not None:  # an ended session's token is refused
                await self.node.revocations.check(identity.school_id, identity.session_id)
        except FrameError as exc:
            close = (CloseCode.UNAUTHENTICATED if exc.code is ErrorCode.UNAUTHENTICATED
                     else CloseCode.PROTOCOL_ERROR)
            await self._refuse(exc.code, exc.message, close, exc.params)
            return False
        except Refused as exc:
            # A host's key set that cannot be fetched is ours to fix: the client retries.
            await self._refuse(exc.code, exc.message,
                               CloseCode.TRY_AGAIN if exc.code is ErrorCode.UNAVAILABLE
                               else CloseCode.UNAUTHENTICATED, exc.params)
            return False
        except StoreError as exc:
            await self._unavailable(exc)
            return False
        if self.node.draining:
            self._held = None
            self._go_elsewhere()
            return False
        gk = est.gatekeeper
        decision = gk.check_connect(identity.user_id)
        if not decision.allowed:
            assert decision.code is not None
            close = (CloseCode.UNAUTHENTICATED if decision.code is ErrorCode.UNAUTHENTICATED
                     else CloseCode.ACCESS_REVOKED)
            await self._refuse(decision.code, decision.message, close, decision.params)
            return False
        user = gk.user(identity.user_id)
        assert user is not None
        # No await between this count and attach's hub.add: the cap cannot be overshot.
        if (self.node.hub.connections_of(identity.school_id, identity.user_id)
                >= limits.connections_per_user):
            await self._refuse(ErrorCode.RATE_LIMITED,
                               f"Trop de connexions pour ce compte (au plus "
                               f"{limits.connections_per_user}) : fermez un autre onglet ou "
                               "appareil.",
                               CloseCode.TOO_MANY_CONNECTIONS,
                               {"limit": "connections", "max": limits.connections_per_user})
            return False
        self.school_id, self.user_id = identity.school_id, identity.user_id
        self.expires_at = identity.expires_at
        # Set before attach adds it to the hub: a SessionsEnded from then on closes it.
        self.session_id = identity.session_id
        self._warn_at = warning_time(now, identity.expires_at)
        self.state = SessionState.OPEN
        try:
            incomplete = await self.node.attach(self, hello.resume)
        except Exception as exc:
            # The node undid what it had done: tell the client to come back shortly.
            await self._unavailable(exc)
            return False
        self._allowance = self.node.hub.allowance(self.school_id, self.user_id)
        window = gk.window_state(now)
        held, self._held = self._held or [], None
        replayed = sum(1 for f in held if f.body.get("type") == "message")
        self.push(Frame(frames.welcome(
            node=self.node.node_id, protocol=PROTOCOL_VERSION, user=person(user, gk),
            school={"id": self.school_id, "name": gk.state.directory.school.name,
                    "timezone": gk.state.settings.timezone},
            window_state=window, heartbeat=int(HEARTBEAT_INTERVAL), replayed=replayed,
            complete=incomplete == 0)))
        for frame in held:
            self.push(frame)
        return True

    async def _refuse(self, code: ErrorCode, message: str, close: CloseCode,
                      params: Mapping[str, Any] | None = None, *,
                      close_text: str | None = None) -> None:
        """The error, then the close; its reason is ``close_text`` (a documented, stable
        reason) or the message."""
        self._held = None
        self.push(Frame(frames.error(code, message, params=params)))
        self.state = SessionState.CLOSED
        await self.outbox.close(close, close_reason(close_text or message))

    async def _unavailable(self, exc: Exception) -> None:
        """Something failed before the welcome (nothing of this connection is left on
        the node): an error, then close 4013 so that the client comes back shortly."""
        if isinstance(exc, BrokerUnavailable) or (isinstance(exc, StoreError)
                                                   and exc.retryable):
            log.warning("cannot attach %s/%s: %s", self.school_id, self.user_id, exc)
            code = ErrorCode.UNAVAILABLE
        else:
            log.error("attaching %s/%s failed", self.school_id, self.user_id, exc_info=exc)
            code = ErrorCode.INTERNAL
        await self._refuse(code, code.phrase, CloseCode.TRY_AGAIN)

    async def _serve_requests(self) -> None:
        bad = 0
        throttle_max = self.node.limits.throttle_max
        while self.state is SessionState.OPEN:
            if self._pause:
                # Over the rate: read nothing more from this connection until the allowance
                # is back, so that a flood waits in the flooder's own TCP buffers instead
                # of costing the server a reply per frame (everyone else's time).
                pause, self._pause = min(self._pause, throttle_max), 0.0
                await asyncio.sleep(pause)
            raw = await self.transport.receive()
            try:
                request = parse_request(decode(raw, self.encoding))
            except FrameError as exc:
                bad += 1
                self._pause = self._charge(BAD_FRAME_COST)  # answered anyway
                self._error(exc.ref, exc.code, exc.message, params=exc.params)
                if bad >= MAX_BAD_FRAMES:
                    self.close(CloseCode.PROTOCOL_ERROR, "too many malformed frames")
                continue
            bad = 0
            self._busy = True
            try:
                await self._answer(request)
            finally:
                self._busy = False
            if self._leave_after_request:
                self._go_elsewhere()

    async def _answer(self, request: Request) -> None:
        ref = request.ref
        try:
            reply = await self._serve(request)
        except Refused as exc:
            self._error(ref, exc.code, exc.message, exc.retry_at, exc.params)
            return
        except NotFound:
            self._error(ref, ErrorCode.NOT_PARTICIPANT, ErrorCode.NOT_PARTICIPANT.phrase,
                        params=_discussion_of(request))
            return
        except UnstorableValue as exc:
            self._error(ref, ErrorCode.BAD_REQUEST, str(exc))
            return
        except StoreError as exc:
            if exc.retryable:  # the database is busy, full or unreachable: nothing was stored
                log.warning("store unavailable serving %s: %s", type(request).__name__, exc)
                self._error(ref, ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE.phrase)
            else:
                log.exception("store failed serving %s", type(request).__name__)
                self._error(ref, ErrorCode.INTERNAL, ErrorCode.INTERNAL.phrase)
            return
        if reply is not None:
            if ref is not None:
                reply["ref"] = ref
            self.push(Frame(reply))

    def _error(self, ref: str | None, code: ErrorCode, message: str,
               retry_at: datetime | None = None,
               params: Mapping[str, Any] | None = None) -> None:
        self.push(Frame(frames.error(code, message, ref=ref, retry_at=retry_at,
                                     params=params)))

    def _charge(self, cost: float) -> float:
        """Spend ``cost`` from the user's allowance; the seconds to wait if it is short."""
        allowance = self._allowance
        return 0.0 if allowance is None else allowance.take(cost)

    def _take_tokens(self, request: Request) -> None:
        match request:
            case ListDiscussions(limit=limit):
                cost = LIST_COST + limit / 25
            case History(limit=limit):
                cost = HISTORY_COST + limit / 50
            case Search(limit=limit):
                cost = search.cost(limit)
            case _:
                cost = COSTS[type(request)]
        wait = self._charge(cost)
        if wait:
            self._pause = wait
            raise Refused(ErrorCode.RATE_LIMITED,
                          retry_at=self.node.clock() + timedelta(seconds=wait),
                          params={"limit": "requests"})

    # ------------------------------------------------------------------ token life

    def check_token(self, now: datetime) -> None:
        """On the node's tick: warn before the token expires, close once it has."""
        if not self.open:
            return
        if now >= self.expires_at:
            self.push(Frame(frames.error(ErrorCode.TOKEN_EXPIRED,
                                         ErrorCode.TOKEN_EXPIRED.phrase)))
            self.close(CloseCode.TOKEN_EXPIRED, "token expired: reconnect with a fresh token")
        elif self._warn_at is not None and now >= self._warn_at:
            self._warn_at = None
            self.push(Frame(frames.token_expiring(self.expires_at)))

    async def _refresh(self, token: str) -> dict[str, Any]:
        """A fresh token for this connection: same school, same user, access re-checked.

        A token that does not verify is refused (``unauthenticated``) and the connection
        goes on until its current token expires; another user's token, or a user the
        directory or the settings no longer let in, ends it (4501, 4503).
        """
        now = self.node.clock()
        identity = await self._verifier.verify(token, now)  # Refused: answered, kept open
        if (identity.school_id, identity.user_id) != (self.school_id, self.user_id):
            self.close(CloseCode.UNAUTHENTICATED, "refresh with another user's token")
            raise Refused(ErrorCode.UNAUTHENTICATED,
                          "Le nouveau jeton est celui d'un autre utilisateur : reconnectez-vous.",
                          params={"reason": "another_user"})
        if identity.session_id is not None:
            try:
                await self.node.revocations.check(identity.school_id, identity.session_id)
            except Refused:  # an ended session's token: this connection ends with it
                self.close(CloseCode.UNAUTHENTICATED, "session ended")
                raise
        est = await self.node.schools.get(self.school_id)
        decision = est.gatekeeper.check_connect(self.user_id)
        if not decision.allowed:
            assert decision.code is not None
            self.close(CloseCode.UNAUTHENTICATED if decision.code is ErrorCode.UNAUTHENTICATED
                       else CloseCode.ACCESS_REVOKED, decision.code.value)
            raise Refused(decision.code, decision.message, params=decision.params)
        if self.state is SessionState.OPEN:  # not cut while we checked
            self.expires_at = identity.expires_at
            self._warn_at = warning_time(now, identity.expires_at)
            self.session_id = identity.session_id  # ending that session now cuts this one
        return frames.refreshed(identity.expires_at)

    async def _serve(self, request: Request) -> dict[str, Any] | None:
        talk = self.node.conversations
        if self.node.clock() >= self.expires_at:
            self.close(CloseCode.TOKEN_EXPIRED, "token expired: reconnect with a fresh token")
            raise Refused(ErrorCode.TOKEN_EXPIRED)
        self._take_tokens(request)
        match request:
            case Send(discussion=d, body=body, client_id=cid):
                return await talk.send(self, d, body, cid)
            case Typing(discussion=d):
                await talk.typing(self, d)
                return None
            case Read(discussion=d, seq=seq):
                await talk.mark_read(self, d, seq)
                return frames.ok()
            case Start(subject=subject, to=to, body=body, client_id=cid, groups=groups):
                return await talk.start_discussion(self, subject, to, body, cid, groups)
            case Invite(discussion=d, user=invitee):
                await talk.invite(self, d, invitee)
                return frames.ok()
            case Leave(discussion=d):
                await talk.leave(self, d)
                return frames.ok()
            case ListDiscussions(before=before, limit=limit):
                items, after = await talk.summaries(self, before, limit)
                return frames.discussions(items, after)
            case History(discussion=d, before=before, limit=limit):
                messages, more = await talk.history(self, d, before, limit)
                # Positions are "now": the newest page carries them, and a scroll back
                # to older pages does not read them again.
                if before is not None:
                    return frames.history(d, messages, more, {})
                return frames.history(d, messages, more, await talk.reads(self, d),
                                      await talk.post_status(self, d))
            case Search(q=q, cursor=after, limit=limit):
                results, after = await search.page(self.node.store, self.school_id,
                                                   self.user_id, q, after, limit)
                return frames.search_results(results, after)
            case Ping():
                return frames.pong()
            case Refresh(token=token):
                return await self._refresh(token)
        raise AssertionError(f"unhandled request {request!r}")


def _discussion_of(request: Request) -> dict[str, Any]:
    """The ``discussion`` param of a refusal about ``request``, when it names one."""
    d = getattr(request, "discussion", None)
    return {} if d is None else {"discussion": d}
