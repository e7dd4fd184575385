"""The node: request → gatekeeper → store → broker; broker publication → hub.

One :class:`Node` per server process. It owns the hub (this process's
connections), serves their requests, talks to the store and the broker, and
hands out the rest: :class:`~server.audience.Audience` (who listens to which
discussion here, their feeds and the cached members that make the per-message
path cheap), :class:`~server.conversations.Conversations` (the participants'
requests), :class:`~server.activity.Activity` (read positions, typing, presence),
:class:`~server.held.HeldRelease` (messages held for the opening) and
:class:`~server.noticeboard.Noticeboard` (broadcasts and polls). What the node
keeps: connections coming and going, the events between nodes (published, read
through a dispatch table, or read again from the store when unreadable), and the
schools' settings and hours (the tick).

How one message travels (see ``docs/design/fan-out.md``):

1. ``Conversations.send``: the gatekeeper decides with the cached members (no I/O);
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
from typing import Any, cast

import msgpack

from . import events, frames
from .activity import Activity
from .audience import Audience, Session, quietly
from .broker import Broker
from .broker.channels import discussion_channel, parse_channel, school_channel
from .clock import Clock
from .conversations import Conversations
from .errors import ErrorCode, NotFound
from .held import HeldRelease
from .hub import Frame, Hub
from .limits import DEFAULT_LIMITS, Limits
from .model import DiscussionId, SchoolId, UserId
from .noticeboard import Noticeboard
from .posting import PostStatus
from .protocol import CloseCode
from .revocation import Revocations
from .schools import Establishment, Schools
from .store import Store, StoredMessage

__all__ = ["Node", "Session"]

log = logging.getLogger("preau.node")

_TAG_BYTES = 8
_UNREADABLE_LOG_EVERY = 10.0  # seconds between warnings about unreadable events


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
        self.conversations = Conversations(store, clock, self.audience, self,
                                           establishment=self.establishment)
        self.held = HeldRelease(store, schools, clock, self.conversations)
        self.noticeboard = Noticeboard(store, self.hub, schools, clock, self)
        self.activity = Activity(self.hub, schools, self.audience,
                                 establishment=self.establishment, spawn=self._spawn)
        self.posting = PostStatus(self.hub, self.audience, clock,
                                  establishment=self.establishment, spawn=self._spawn)
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
        self._dispatch.on(events.DiscussionAdded, self._on_discussion_added)
        self._dispatch.on(events.PolicyChanged, self._on_policy_changed)
        self._dispatch.on(events.HeldDropped, self._on_held_dropped)
        # Ended sign-in sessions: their tokens refused, their connections cut.
        self.revocations = Revocations(store, self.hub, publish=self.announce)
        self.activity.register(self._dispatch)
        self.noticeboard.register(self._dispatch)
        self.revocations.register(self._dispatch)
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
            if not session.open:
                continue
            try:
                await self._reconcile(session)  # joins and leaves it missed
                await self.noticeboard.catch_up(session)  # broadcasts it missed
            except Exception:  # that one reconnects (4013); the others still catch up
                log.exception("catching up a connection of %s failed", school)

    def handle_resubscribed(self) -> None:
        """Pub/sub may have dropped publications while Redis was away: re-read the store
        (messages, memberships and settings), and which sign-in sessions ended."""
        self._spawn(self.revocations.recheck_connections())
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

    def _on_discussion_added(self, ev: events.DiscussionAdded) -> None:
        self._spawn(self._discussion_added(ev.school, ev.discussion, list(ev.users)))

    def _on_policy_changed(self, ev: events.PolicyChanged) -> None:
        self._spawn(self._refresh_school(ev.school))

    def _on_held_dropped(self, ev: events.HeldDropped) -> None:
        frame = Frame(frames.held_dropped(ev.client_id, ev.discussion, ev.code, ev.message,
                                          ev.params))
        for member in self.hub.of_user(ev.school, ev.user):
            member.push(frame)

    async def _publish(self, channel: str, event: events.Event) -> None:
        data = self._packer.pack(events.encode(event, self.events_version))
        await quietly(self.broker.publish(channel, self._tag + data))

    async def announce_in(self, school: SchoolId, d: DiscussionId,
                          event: events.Event) -> None:
        """Publish on the discussion's channel and handle it here too."""
        self._dispatch(event)
        await self._publish(discussion_channel(school, d), event)

    async def publish_in(self, school: SchoolId, d: DiscussionId,
                         event: events.Event) -> None:
        """Publish on the discussion's channel (handled here already)."""
        await self._publish(discussion_channel(school, d), event)

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
        self.posting.members_changed(school, d)  # who may post there may have changed

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
                member.push(Frame(frames.access(decision.code, decision.message,
                                                decision.params)))
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
            member.check_token(now)  # token_expiring, then token_expired and close 4401
        # After the window events, so that clients hear "open" before the held messages.
        await self.held.release_due()
        await self.noticeboard.release_due()
        await self.revocations.prune_due(now)

    async def policy_changed(self, school: SchoolId) -> None:
        """Settings or preferences changed here: apply at once on every node."""
        await self._refresh_school(school)
        await self._publish(school_channel(school), events.PolicyChanged(school))


def _come_back(sessions: Iterable[Session]) -> None:
    """A join that failed in the background: these connections would silently miss the
    discussion, so they reconnect (4013) and resume, which joins it again."""
    for session in sessions:
        session.close(CloseCode.TRY_AGAIN, "could not follow a discussion: reconnect")
