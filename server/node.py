"""The node: request → gatekeeper → store → broker; broker publication → hub.

One :class:`Node` per server process. It owns the hub (this process's
connections), serves their requests, talks to the store and the broker, and
hands out the rest: :class:`~server.audience.Audience` (who listens to which
discussion here, their feeds and the cached members that make the per-message
path cheap), :class:`~server.held.HeldRelease` (messages held for the opening)
and :class:`~server.noticeboard.Noticeboard` (broadcasts and polls).

How one message travels (see ``docs/design/fan-out.md``):

1. ``send``: the gatekeeper decides with the cached members (no I/O);
2. the store appends it durably and assigns the next sequence number, if the
   members are still those it was decided with (else it is decided again: someone
   invited meanwhile was not part of the decision);
3. the node offers it to its own feed (local connections get it at once, even
   if the broker is down) and publishes it once on the discussion's channel;
4. every other node subscribed to that channel offers it to its feed; a feed
   delivers seq ``w+1`` after ``w``, drops what it has seen, and reads the store
   to fill any gap (a publication lost while Redis was away);
5. the frame is encoded once per encoding and queued on each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import msgpack

from . import events, frames, summaries
from .audience import Audience, Session, quietly
from .broker import Broker
from .broker.channels import discussion_channel, parse_channel, school_channel
from .clock import Clock
from .errors import ErrorCode, MembersChanged, NotFound, Refused, StoreUnavailable
from .gatekeeper.quota import DAY
from .held import HeldRelease
from .hub import Frame, Hub
from .limits import DEFAULT_LIMITS, Limits
from .model import DiscussionId, DiscussionMembers, Participant, SchoolId, UserId
from .noticeboard import Noticeboard
from .protocol import CloseCode
from .schools import Establishment, Schools
from .store import HeldMessage, Store, StoredMessage

__all__ = ["Node", "Session"]

log = logging.getLogger("preau.node")

_TAG_BYTES = 8
_UNREADABLE_LOG_EVERY = 10.0  # seconds between warnings about unreadable events

# A post or an invitation is stored only if the members it was checked against are
# still those in the store; else it is checked again with the new ones, this many times
# at most (then ``unavailable``: the client retries with the same request).
_RECHECKS = 5


class Node:
    """Node is responsible for serving requests and moving messages between connections."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        schools: Schools,
        *,
        clock: Clock,
        limits: Limits = DEFAULT_LIMITS,
        node_id: str | None = None,
        events_version: int = events.CURRENT,
    ) -> None:
        self.store = store
        self.broker = broker
        self.schools = schools
        self.clock = clock
        self.limits = limits
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.hub = Hub(limits.rate_per_second, limits.rate_burst)
        self._tag = uuid.uuid4().bytes[:_TAG_BYTES]
        self._school_subs: dict[SchoolId, int] = {}
        self._window_open: dict[SchoolId, bool] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._packer = msgpack.Packer(use_bin_type=True)
        self.draining = False
        self._emptied: asyncio.Event | None = None
        self.audience = Audience(store, broker, self.hub, limits,
                                 establishment=self.establishment, spawn=self._spawn)
        self.held = HeldRelease(store, schools, clock, self)
        self.noticeboard = Noticeboard(store, self.hub, schools, clock, self)
        # The version of the events this node writes (it reads every version up to
        # events.CURRENT): older while nodes of the previous release remain.
        self.events_version = events.encode_version(events_version)
        self.events_unreadable = 0  # events from other nodes this one could not read
        self._unreadable_logged = -_UNREADABLE_LOG_EVERY  # monotonic time of the last log
        self._unreadable_unlogged = 0
        self._resyncs: set[tuple[SchoolId, DiscussionId | None]] = set()
        self._dispatch = events.Dispatch()
        self._dispatch.on(events.Message, self._on_message)
        self._dispatch.on(events.Joined, self._on_joined)
        self._dispatch.on(events.Left, self._on_left)
        self._dispatch.on(events.Read, self._on_read)
        self._dispatch.on(events.Typing, self._on_typing)
        self._dispatch.on(events.Presence, self._on_presence)
        self._dispatch.on(events.DiscussionAdded, self._on_discussion_added)
        self._dispatch.on(events.PolicyChanged, self._on_policy_changed)
        self._dispatch.on(events.HeldDropped, self._on_held_dropped)
        self.noticeboard.register(self._dispatch)
        if self._dispatch.missing():  # a kind nobody handles: fail now, not at its first event
            raise RuntimeError(f"no handler for events {self._dispatch.missing()}")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.broker.register(self)
        await self.broker.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: each connection finishes its request in progress, is told
        to reconnect elsewhere and closed with 4000; wait (at most ``grace`` s) for all."""
        self.draining = True
        self._emptied = asyncio.Event()
        for session in self._sessions():
            session.shutdown()
        if len(self.hub):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), grace)

    async def close(self) -> None:
        """Tell every connection to reconnect elsewhere, then stop."""
        if self._ticker is not None:
            self._ticker.cancel()
        for member in self._sessions():
            member.push(Frame(frames.reconnect("server shutting down")))
            member.close(CloseCode.SHUTDOWN, "server shutting down: reconnect")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.broker.close()

    def _sessions(self, school: SchoolId | None = None) -> list[Session]:
        """Every connection here (of one school); the hub holds only sessions."""
        return [cast(Session, m) for m in self.hub.members()
                if school is None or m.school_id == school]

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background; its failure is logged, never lost."""
        self._spawn(coro)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def establishment(self, school_id: SchoolId) -> Establishment:
        """The school's current snapshot: cached, refreshed by notices and the tick."""
        current = self.schools.current(school_id)
        if current is not None:
            return current
        return await self.schools.get(school_id)

    # ------------------------------------------------------------------ connections

    async def attach(
        self, session: Session, resume: Sequence[tuple[DiscussionId, int]] | None
    ) -> int:
        """Register a connection, subscribe it to its discussions and replay what it missed.

        ``resume`` ``None`` is a fresh client: live traffic only. Otherwise every
        listed discussion is replayed after its position, and every discussion the
        user is in but did not list (added while the client was away) is announced
        with a ``discussion`` event and replayed from the start. Listed discussions come
        first; all of it shares one budget (half the outbox), so the welcome always fits.
        Once it is spent, the remaining discussions are followed live without replay or
        announcement (the client finds them with ``list``, their past with ``history``).
        Returns how many replays or announcements were cut (``resume.complete``).

        All or nothing: if a step fails (the store, the broker), what was done is
        undone before the error goes up: the connection is out of the hub, its school
        and discussions are released, no catch-up is left buffering.
        """
        school = session.school_id
        first = self.hub.add(session)
        try:
            if self._school_subs.get(school, 0) == 0:
                await self.broker.subscribe(school_channel(school))
            self._school_subs[school] = self._school_subs.get(school, 0) + 1
        except BaseException:
            await self._undo_attach(session, counted=False)
            raise
        try:
            return await self._attach(session, resume, first)
        except BaseException:
            await self._undo_attach(session, counted=True)
            raise

    async def _undo_attach(self, session: Session, *, counted: bool) -> None:
        for d in list(session.subscribed):
            self.audience.leave(session, d)
        self.hub.remove(session)
        if self._emptied is not None and not len(self.hub):
            self._emptied.set()
        if counted:
            await self._uncount_school(session.school_id)

    async def _attach(self, session: Session, resume: Sequence[tuple[DiscussionId, int]] | None,
                      first: bool) -> int:
        """The steps of :meth:`attach` after the hub and the school channel."""
        school, user = session.school_id, session.user_id
        if school not in self._window_open:
            # The window as this connection was told in its welcome: changes from here on
            # are announced by the tick.
            est = await self.establishment(school)
            self._window_open[school] = est.gatekeeper.window_state(self.clock()).is_open
        positions = dict(resume or ())
        replay = self.audience.replay()
        incomplete = 0
        present = await self.store.present_discussions(school, user)
        # What the client knows first: its own discussions are never crowded out by new ones.
        for d in sorted(present, key=lambda d: d not in positions):
            if resume is None:
                await self.audience.join_one(session, d, None)
            elif replay.spent:
                await self.audience.join_one(session, d, None)
                incomplete += 1
            elif d in positions:
                incomplete += await self.audience.join_one(session, d, positions[d], replay)
            else:
                incomplete += await self.audience.join_one(session, d, 0, replay, announce=True)
        # A resume position for a discussion the user has left: replay up to where they left.
        for d, seq in positions.items():
            if d not in present:
                visible = await self.store.visible_seq(school, d, user)
                if visible is not None and visible > seq:
                    rows = replay.take(await self.store.messages_after(
                        school, d, seq, upto=visible, limit=replay.limit, newest=True))
                    for m in rows:
                        session.push(Frame(frames.skipped(d, m.seq) if user in m.hidden_from
                                           else frames.message(m)))
                    incomplete += int(not rows or rows[0].seq > seq + 1)
        await self.noticeboard.catch_up(session)
        if first:
            await self._publish_school(school, events.Presence(school, user, True,
                                                               tuple(present)))
        return incomplete

    async def detach(self, session: Session) -> None:
        school, user = session.school_id, session.user_id
        discussions = list(session.subscribed)
        for d in discussions:
            self.audience.leave(session, d)
        last = self.hub.remove(session)
        if self._emptied is not None and not len(self.hub):
            self._emptied.set()
        await self._uncount_school(school)
        if last:
            await self._publish_school(school, events.Presence(school, user, False,
                                                               tuple(discussions)))

    async def _uncount_school(self, school: SchoolId) -> None:
        """One connection of ``school`` fewer; the last one releases its channel."""
        count = self._school_subs.get(school, 1) - 1
        if count <= 0:
            self._school_subs.pop(school, None)
            self._window_open.pop(school, None)
            await quietly(self.broker.unsubscribe(school_channel(school)))
        else:
            self._school_subs[school] = count

    # ------------------------------------------------------------------ broker side

    def handle_publication(self, channel: str, data: bytes) -> None:
        if data[:_TAG_BYTES] == self._tag:
            return  # our own publication: already delivered locally
        try:
            event = events.decode(msgpack.unpackb(data[_TAG_BYTES:], raw=False))
        except events.Unreadable as exc:
            self.unreadable(channel, exc)
            return
        except Exception as exc:  # not even msgpack
            self.unreadable(channel, events.Unreadable(f"not an event: {exc!r}"))
            return
        try:
            self._dispatch(event)
        except Exception:
            log.exception("handling %s from %s failed", type(event).__name__, channel)

    def unreadable(self, channel: str, exc: events.Unreadable) -> None:
        """An event this node cannot read (newer, unknown or malformed): say so, count
        it, and read again from the store what it may have been about: the discussion's
        messages and members, then the school's settings, memberships and broadcasts
        for the connections here. Nothing it announced is lost, only later."""
        self.events_unreadable += 1
        now = time.monotonic()
        if now - self._unreadable_logged >= _UNREADABLE_LOG_EVERY:
            log.warning("unreadable event on %s (%s; %d more since the last warning): "
                        "reading the store instead; is a newer node writing a version "
                        "this one cannot read? (PREAU_EVENTS_VERSION, docs/operating.md)",
                        channel, exc.reason, self._unreadable_unlogged)
            self._unreadable_logged, self._unreadable_unlogged = now, 0
        else:
            self._unreadable_unlogged += 1
        school, d = exc.school, exc.discussion
        if school is None or (d is None and ":d:" in channel):
            with contextlib.suppress(ValueError):
                name = parse_channel(channel)
                school = name.school_id if school is None else school
                d = name.discussion_id if d is None else d
        if school is None:
            self.handle_resubscribed()  # nothing tells where: everything again
            return
        if d is not None:
            self._resync((school, d), self._resync_discussion(school, d))
        self._resync((school, None), self._resync_school(school))

    def _resync(self, key: tuple[SchoolId, DiscussionId | None],
                work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` unless the same is waiting to start: a burst of unreadable events
        costs one read of the store, not one each."""
        if key in self._resyncs:
            work.close()
            return
        self._resyncs.add(key)

        async def run() -> None:
            self._resyncs.discard(key)  # events from now on come after what it reads
            await work

        self._spawn(run())

    async def _resync_discussion(self, school: SchoolId, d: DiscussionId) -> None:
        self.audience.members_changed((school, d))
        await self.audience.catch_up((school, d))  # the messages it missed, from the store

    async def _resync_school(self, school: SchoolId) -> None:
        await self._refresh_school(school)
        for session in self._sessions(school):
            if session.open:
                await self._reconcile(session)  # joins and leaves it missed
                await self.noticeboard.catch_up(session)  # broadcasts it missed

    def handle_resubscribed(self) -> None:
        """Pub/sub may have dropped publications while Redis was away: re-read the store
        (messages, memberships and settings)."""
        for key in self.audience.followed():
            self._spawn(self.audience.catch_up(key))
        for school in list(self._school_subs):
            self._spawn(self._refresh_school(school))
        for session in self._sessions():
            self._spawn(self._reconcile(session))

    async def _reconcile(self, session: Session) -> None:
        """Match a connection's discussions to the store: joins and leaves it missed."""
        school, user = session.school_id, session.user_id
        present = set(await self.store.present_discussions(school, user))
        current = set(session.subscribed)
        for d in current - present:
            self.audience.leave(session, d)
            session.push(Frame(frames.left(d, user)))
        for d in sorted(present - current):
            if not session.open:
                return
            try:
                await self.audience.join_one(session, d, 0, self.audience.replay(), announce=True)
            except Exception:
                _come_back([session])
                raise

    # The handlers of the events, from this node or another (the dispatch table).

    def _on_message(self, ev: events.Message) -> None:
        msg = StoredMessage(ev.discussion, ev.seq, ev.sender, ev.client_id, ev.body, ev.at,
                            ev.hidden_from)
        self.audience.offer((ev.school, ev.discussion), msg)

    def _on_joined(self, ev: events.Joined) -> None:
        self._membership_changed(ev.school, ev.discussion, ev.user, joined=True,
                                 invited_by=ev.invited_by)

    def _on_left(self, ev: events.Left) -> None:
        self._membership_changed(ev.school, ev.discussion, ev.user, joined=False,
                                 invited_by=None)

    def _on_read(self, ev: events.Read) -> None:
        self._push_activity(ev.school, ev.discussion, ev.user,
                            frames.read(ev.discussion, ev.user, ev.seq), to_self=True)

    def _on_typing(self, ev: events.Typing) -> None:
        self._push_activity(ev.school, ev.discussion, ev.user,
                            frames.typing(ev.discussion, ev.user), to_self=False)

    def _on_presence(self, ev: events.Presence) -> None:
        self._presence(ev.school, ev.user, ev.online, list(ev.discussions))

    def _on_discussion_added(self, ev: events.DiscussionAdded) -> None:
        self._spawn(self._discussion_added(ev.school, ev.discussion, list(ev.users)))

    def _on_policy_changed(self, ev: events.PolicyChanged) -> None:
        self._spawn(self._refresh_school(ev.school))

    def _on_held_dropped(self, ev: events.HeldDropped) -> None:
        frame = Frame(frames.held_dropped(ev.client_id, ev.discussion, ev.code, ev.message))
        for member in self.hub.of_user(ev.school, ev.user):
            member.push(frame)

    async def _publish(self, channel: str, event: events.Event) -> None:
        data = self._packer.pack(events.encode(event, self.events_version))
        await quietly(self.broker.publish(channel, self._tag + data))

    async def announce(self, school: SchoolId, event: events.Event) -> None:
        """Publish an event about people on the school channel, and handle it here too."""
        await self._publish_school(school, event)

    async def _publish_school(self, school: SchoolId, event: events.Event) -> None:
        """Publish on the school channel and handle it here too (the broker skips our own)."""
        self._dispatch(event)
        await self._publish(school_channel(school), event)

    # ------------------------------------------------------------------ pushes

    def _push_discussion(self, school: SchoolId, d: DiscussionId, body: dict[str, Any]) -> None:
        frame = Frame(body)
        for member in self.hub.in_discussion(school, d):
            member.push(frame)

    def _push_activity(self, school: SchoolId, d: DiscussionId, author: UserId,
                       body: dict[str, Any], *, to_self: bool) -> None:
        """A typing or read event, only to the connections whose user and ``author`` may
        exchange in ``d`` now (the G6 pair rule, either way): the invariant of
        ``docs/policy.md`` holds for these too. Filtered here, where frames from any node
        reach local connections."""
        est = self.schools.current(school)
        members = self.audience.cached_members((school, d))
        if est is None or members is None:  # not cached: read them, off this call
            self._spawn(self._push_activity_later(school, d, author, body, to_self=to_self))
            return
        self._push_to_peers(school, est, members, author, body, to_self=to_self)

    async def _push_activity_later(self, school: SchoolId, d: DiscussionId, author: UserId,
                                   body: dict[str, Any], *, to_self: bool) -> None:
        try:
            est = await self.establishment(school)
            members = await self.members(school, d)
        except NotFound:
            return
        self._push_to_peers(school, est, members, author, body, to_self=to_self)

    def _push_to_peers(self, school: SchoolId, est: Establishment, members: DiscussionMembers,
                       author: UserId, body: dict[str, Any], *, to_self: bool) -> None:
        here = self.hub.in_discussion(school, members.id)
        if not here:
            return
        peers = est.gatekeeper.exchanges_with(author, members)
        frame = Frame(body)
        for member in here:
            if member.user_id in peers or (to_self and member.user_id == author):
                member.push(frame)

    def _presence(self, school: SchoolId, user: UserId, online: bool,
                  discussions: list[DiscussionId]) -> None:
        seen: set[int] = set()
        frame = Frame(frames.presence(user, online))
        for d in discussions:
            for member in self.hub.in_discussion(school, d):
                if member.user_id != user and id(member) not in seen:
                    seen.add(id(member))
                    member.push(frame)

    def _membership_changed(self, school: SchoolId, d: DiscussionId, user: UserId, *,
                            joined: bool, invited_by: str | None) -> None:
        self.audience.members_changed((school, d))
        current = self.schools.current(school)
        if joined:
            body = frames.joined(d, current.person(user) if current is not None
                                 else {"id": user}, invited_by)
        else:
            body = frames.left(d, user)
        self._push_discussion(school, d, body)
        if not joined:
            for member in self.hub.of_user(school, user):
                session = cast(Session, member)
                if d in set(session.subscribed):
                    self.audience.leave(session, d)

    async def _discussion_added(self, school: SchoolId, d: DiscussionId,
                                users: list[UserId]) -> None:
        """Users here were added to a discussion: tell them and subscribe their connections.

        A new class discussion adds thirty people at once: they join together, with one
        read of the discussion for all of them instead of one each.
        """
        here = [cast(Session, m) for u in users for m in self.hub.of_user(school, u)]
        joining = [s for s in here if d not in set(s.subscribed)]
        following = [s for s in here if d in set(s.subscribed)]
        if joining:
            try:
                await self.audience.join(school, d, joining, 0, announce=True)
            except Exception:
                _come_back(joining)  # they would miss the discussion until they reconnect
                raise
        if following:  # already following it (a second notice): the summary is enough
            summaries = await self.audience.summaries(school, d, [s.user_id for s in following])
            for session in following:
                summary = summaries.get(session.user_id)
                if summary is not None:
                    session.push(Frame(frames.discussion(summary)))

    async def _refresh_school(self, school: SchoolId) -> None:
        """A policy change: rebuild the snapshot, cut those who lost access, tell the window."""
        try:
            est = await self.schools.get(school)
        except NotFound:
            return
        self.audience.school_changed(school)
        gk = est.gatekeeper
        for member in self._sessions(school):
            decision = gk.check_connect(member.user_id)
            if not decision.allowed:
                assert decision.code is not None
                member.push(Frame(frames.access(decision.code, decision.message)))
                code = (CloseCode.UNAUTHENTICATED if decision.code is ErrorCode.UNAUTHENTICATED
                        else CloseCode.ACCESS_REVOKED)
                member.close(code, decision.code.value)
        self._check_window(school, est)

    def _check_window(self, school: SchoolId, est: Establishment) -> None:
        if school not in self._school_subs:
            # Nobody of this school is connected here: there is nobody to tell, and a
            # state kept now would make the next connection hear of a change that came
            # before it (``attach`` records the state its welcome announced).
            return
        state = est.gatekeeper.window_state(self.clock())
        before = self._window_open.get(school)
        self._window_open[school] = state.is_open
        if before is not None and before != state.is_open:
            frame = Frame(frames.window(state))
            for member in self._sessions(school):
                member.push(frame)

    async def _tick_loop(self) -> None:
        """Window changes, token expiry, and policy changes made without a notice."""
        while True:
            await asyncio.sleep(self.limits.tick_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("tick failed")

    async def tick(self) -> None:
        now = self.clock()
        for school in list(self._school_subs):
            before = self.schools.current(school)
            try:
                est = await self.schools.get(school)
            except NotFound:
                continue
            if before is not est:
                await self._refresh_school(school)
            else:
                self._check_window(school, est)
        for member in self._sessions():
            if now >= member.expires_at:
                member.push(Frame(frames.error(ErrorCode.UNAUTHENTICATED,
                                         "The token has expired: sign in again.")))
                member.close(CloseCode.UNAUTHENTICATED, "token expired")
        # After the window events, so that clients hear "open" before the held messages.
        await self.held.release_due()
        await self.noticeboard.release_due()

    # ------------------------------------------------------------------ requests

    async def members(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        return await self.audience.members(school, d)

    async def _fresh_members(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        """The members as the store has them now (the cached ones were outdated)."""
        self.audience.members_changed((school, d))
        return await self._members_or_nobody(school, d)

    async def _members_or_nobody(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        """The discussion's members; for an id that does not exist here, nobody.

        The gatekeeper then answers an unknown discussion exactly as one the user is not
        in, with the same precedence (G1–G3 first): no oracle on which ids exist.
        """
        try:
            return await self.members(school, d)
        except NotFound:
            return DiscussionMembers(d, 0, ())

    async def send(self, session: Session, d: DiscussionId, body: str,
                   client_id: str) -> dict[str, Any]:
        """Post a message; returns the ack frame (sent only once the message is durable)."""
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        for _ in range(_RECHECKS):
            est = await self.establishment(school)
            now = self.clock()
            decision = est.gatekeeper.check_send(user, members, now)
            if not decision.allowed or decision.hold_until is not None:
                # A retry of a message already stored is answered as such, whatever the
                # rules say now (the window may have closed since the first attempt).
                earlier = await self.store.find_message(school, d, user, client_id)
                if earlier is not None:
                    return frames.ack(earlier, duplicate=True)
                decision.raise_for_refusal()
                assert decision.hold_until is not None
                return await self._hold(school, user, client_id, body, decision.hold_until,
                                        discussion=d)
            try:
                msg, new = await self.store.append_message(
                    school, d, user, client_id, body, now=now,
                    hidden_from=decision.hidden_from, members_version=members.version)
            except MembersChanged:  # someone joined or left since: decide with them
                members = await self._fresh_members(school, d)
                continue
            break
        else:
            raise StoreUnavailable(f"the members of discussion {d} keep changing")
        if new:
            self.audience.offer((school, d), msg)
        # A retry publishes again: the first attempt's node may have died before its
        # PUBLISH. Feeds drop what they have already seen.
        await self._publish(discussion_channel(school, d), _message_event(school, msg))
        return frames.ack(msg, duplicate=not new)

    async def start_discussion(self, session: Session, subject: str, to: Sequence[UserId],
                               body: str, client_id: str) -> dict[str, Any]:
        school, user = session.school_id, session.user_id
        est = await self.establishment(school)
        now = self.clock()
        decision = est.gatekeeper.check_start(user, to, now)
        earlier = await self.store.find_started(school, user, client_id)
        if earlier is None:
            decision.raise_for_refusal()
            await self._check_start_quota(school, est, user, now)
            if decision.hold_until is not None:
                return await self._hold(school, user, client_id, body, decision.hold_until,
                                        subject=subject, recipients=to)
        else:  # a retry: answer what the first attempt did, whatever the rules say now
            return frames.started(await self.summary(school, user, earlier.discussion_id),
                                  frames.ack(earlier, duplicate=True))
        msg = await self.create_discussion(school, user, subject, to, body, client_id, now)
        return frames.started(await self.summary(school, user, msg.discussion_id),
                              frames.ack(msg, duplicate=False))

    async def _check_start_quota(self, school: SchoolId, est: Establishment, user: UserId,
                                 now: datetime) -> None:
        """Refuse ``rate_limited`` (with ``retry_at``) past the school's start limits.
        Counted from the store, so it holds across connections and nodes; two starts
        racing on different connections may both pass (one over, at most per connection)."""
        gk = est.gatekeeper
        recent = await self.store.recent_starts(school, user, since=now - DAY,
                                                limit=gk.start_limits.per_day)
        gk.check_start_quota(recent, now).raise_for_refusal()

    async def create_discussion(self, school: SchoolId, user: UserId, subject: str,
                      to: Sequence[UserId], body: str, client_id: str,
                      now: datetime) -> StoredMessage:
        # One transaction: a failure leaves no discussion without its first message.
        members = await self.store.create_discussion(school, user, subject, to, now=now,
                                                     first=(client_id, body))
        d = members.id
        msg = StoredMessage(d, 1, user, client_id, body, now)
        everyone = [p.user_id for p in members.participants]
        await self._publish_school(school, events.DiscussionAdded(school, d, tuple(everyone)))
        await self._publish(discussion_channel(school, d), _message_event(school, msg))
        return msg

    async def posted(self, school: SchoolId, msg: StoredMessage) -> None:
        """A message just stored (released from hold): deliver here, publish to the others."""
        self.audience.offer((school, msg.discussion_id), msg)
        await self._publish(discussion_channel(school, msg.discussion_id),
                            _message_event(school, msg))

    async def held_dropped(self, school: SchoolId, held: HeldMessage, code: ErrorCode,
                           message: str) -> None:
        await self._publish_school(school, events.HeldDropped(
            school, held.sender, held.client_id, held.discussion_id, code.value, message))

    async def _hold(self, school: SchoolId, user: UserId, client_id: str, body: str,
                    until: datetime, *, discussion: DiscussionId | None = None,
                    subject: str | None = None,
                    recipients: Sequence[UserId] = ()) -> dict[str, Any]:
        """Defer mode outside the hours: keep it for the opening (checked again then)."""
        held, new = await self.store.hold(school, user, client_id, body,
                                          discussion_id=discussion, subject=subject,
                                          recipients=recipients, now=self.clock(),
                                          release_at=until)
        return frames.held(discussion, client_id, held.release_at, duplicate=not new)

    async def invite(self, session: Session, d: DiscussionId, invitee: UserId) -> None:
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        for _ in range(_RECHECKS):
            gk = (await self.establishment(school)).gatekeeper
            now = self.clock()
            gk.check_invite(user, members, invitee, now).raise_for_refusal()
            # What was posted before they arrive (or while they were away) is theirs only
            # from authors they may exchange with now, the invitation applied: hidden in
            # the same transaction, against exactly these members (docs/policy.md).
            readable = gk.readable_authors(invitee, _with(members, invitee, user, now))
            try:
                await self.store.add_participant(school, d, invitee, invited_by=user, now=now,
                                                 members_version=members.version,
                                                 readable_authors=readable)
            except MembersChanged:
                members = await self._fresh_members(school, d)
                continue
            break
        else:
            raise StoreUnavailable(f"the members of discussion {d} keep changing")
        event: events.Event = events.Joined(school, d, invitee, user)
        self._dispatch(event)
        await self._publish(discussion_channel(school, d), event)
        await self._publish_school(school, events.DiscussionAdded(school, d, (invitee,)))

    async def leave(self, session: Session, d: DiscussionId) -> None:
        school, user = session.school_id, session.user_id
        est = await self.establishment(school)
        members = await self._members_or_nobody(school, d)
        est.gatekeeper.check_leave(user, members).raise_for_refusal()
        await self.store.leave(school, d, user, now=self.clock())
        event = events.Left(school, d, user)
        self._dispatch(event)
        await self._publish(discussion_channel(school, d), event)

    async def mark_read(self, session: Session, d: DiscussionId, seq: int) -> None:
        school, user = session.school_id, session.user_id
        try:
            position = await self.store.mark_read(school, d, user, seq)
        except NotFound:
            raise Refused(ErrorCode.NOT_PARTICIPANT) from None
        event = events.Read(school, d, user, position)
        self._dispatch(event)
        await self._publish(discussion_channel(school, d), event)

    async def typing(self, session: Session, d: DiscussionId) -> None:
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        participant = members.get(user)
        if participant is None or not participant.present:
            raise Refused(ErrorCode.NOT_PARTICIPANT)
        event = events.Typing(school, d, user)
        self._dispatch(event)
        await self._publish(discussion_channel(school, d), event)

    async def history(self, session: Session, d: DiscussionId, before: int | None,
                      limit: int) -> tuple[list[dict[str, Any]], bool]:
        school, user = session.school_id, session.user_id
        visible = await self.store.visible_seq(school, d, user)
        if visible is None:
            raise Refused(ErrorCode.NOT_PARTICIPANT)
        bound = visible + 1 if before is None else min(before, visible + 1)
        rows = await self.store.messages(school, d, before_seq=bound, limit=limit + 1,
                                         reader=user)
        return [frames.message(m) for m in rows[:limit]], len(rows) > limit

    async def summaries(self, session: Session, before: str | None = None,
                        limit: int = 200) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the user's discussions, most recently active first, and the cursor
        of the next page (``None`` on the last). A flood of new discussions pushes older
        ones to later pages, never out of reach."""
        school = session.school_id
        est = await self.establishment(school)
        rows = await self.store.summaries(school, session.user_id, limit=limit + 1,
                                          before=None if before is None
                                          else summaries.read_cursor(before))
        page = rows[:limit]
        after = None
        if len(rows) > limit:
            last = page[-1]
            assert last.last_at is not None
            after = summaries.cursor(last.last_at, last.discussion.id)
        return [summaries.summary_json(est, s, session.user_id) for s in page], after

    async def summary(self, school: SchoolId, user: UserId, d: DiscussionId) -> dict[str, Any]:
        est = await self.establishment(school)
        for s in await self.store.summaries(school, user, discussion_id=d):
            return summaries.summary_json(est, s, user)
        raise NotFound(f"no discussion {d} for {user}")

    async def policy_changed(self, school: SchoolId) -> None:
        """Settings or preferences changed here: apply at once on every node."""
        await self._refresh_school(school)
        await self._publish(school_channel(school), events.PolicyChanged(school))


def _come_back(sessions: Iterable[Session]) -> None:
    """A join that failed in the background: these connections would silently miss the
    discussion, so they reconnect (4013) and resume, which joins it again."""
    for session in sessions:
        session.close(CloseCode.TRY_AGAIN, "could not follow a discussion: reconnect")


def _with(members: DiscussionMembers, user: UserId, invited_by: UserId,
          now: datetime) -> DiscussionMembers:
    """``members`` with ``user`` brought in (or back) by ``invited_by``, as the store
    will have them once the invitation is stored (same order: a returning participant
    keeps their row)."""
    joining = Participant(user, invited_by, now)
    rows = [joining if p.user_id == user else p for p in members.participants]
    if joining not in rows:
        rows.append(joining)
    return DiscussionMembers(members.id, members.version + 1, tuple(rows))


def _message_event(school: SchoolId, msg: StoredMessage) -> events.Message:
    return events.Message(school, msg.discussion_id, msg.seq, msg.sender, msg.client_id,
                          msg.body, msg.created_at, msg.hidden_from)
