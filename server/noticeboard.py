"""The noticeboard: information broadcasts and polls, from the author to the hub.

One :class:`Noticeboard` per self. Its requests follow the path of a message:
the gatekeeper decides (G1–G3, G8) and computes the recipients, the store keeps
the broadcast and each recipient's row, and an event on the school channel
reaches every node, which pushes frames to the connections it holds. Events
(:mod:`server.events`) name people, so a node acts only for its own connections:

==================  ==========================================  ==========================
event               published when                              each node pushes
==================  ==========================================  ==========================
BroadcastPublished  a broadcast is created or published         ``broadcast`` to recipients
                                                                here (and marks them
                                                                received), the author's
                                                                view to the author
BroadcastStats      a recipient's row changed (new figures)     ``broadcast_stats`` to the
                                                                author
BroadcastMine       a recipient read, acknowledged or answered  ``broadcast_mine`` to them
BroadcastReminded   the author sent a reminder                  ``broadcast_reminder``
BroadcastDropped    a scheduled broadcast was refused           ``broadcast_dropped`` to
                                                                the author
==================  ==========================================  ==========================

Anonymous polls: no view, result or event built here names who answered what,
or who answered at all (see :meth:`Noticeboard.results`). The wire format is
``docs/protocol.md`` §14.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from . import events, frames, summaries
from .broadcasts import (
    DEFAULT_POLL_DAYS,
    REMINDER_INTERVAL,
    Kind,
    QuestionKind,
    parse_answers,
    parse_draft,
    parse_target,
    questions_to_json,
    target_to_json,
)
from .clock import Clock
from .contacts import Query
from .errors import ErrorCode, NotFound, Refused, wire_params
from .hub import Frame, Hub, Member
from .model import SchoolId, UserId
from .protocol import MAX_INT
from .schools import Establishment, Schools
from .store import Broadcast, BroadcastStats, BroadcastStore, Receipt

__all__ = ["MAX_PEOPLE", "Noticeboard", "NoticeboardHost", "stats_json"]

log = logging.getLogger("preau.noticeboard")

MAX_PEOPLE = 50  # people returned by an audience search
PAGE = 100  # broadcasts per page of a listing, unless asked otherwise
MAX_CACHED = 512  # published broadcasts whose header a node keeps


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else frames.iso(dt)


def stats_json(stats: BroadcastStats) -> dict[str, Any]:
    return {"version": stats.version, "recipients": stats.recipients,
            "received": stats.received, "read": stats.read,
            "acknowledged": stats.acknowledged, "answered": stats.answered,
            "counts": [None if c is None else list(c) for c in stats.counts]}


def mine_json(r: Receipt) -> dict[str, Any]:
    return {"received_at": _iso(r.received_at), "read_at": _iso(r.read_at),
            "acknowledged_at": _iso(r.acknowledged_at), "answered_at": _iso(r.answered_at),
            "answers": None if r.answers is None else list(r.answers),
            "reminded_at": _iso(r.reminded_at)}


class NoticeboardHost(Protocol):
    """What the noticeboard needs of the node that holds it, beyond the store, the hub,
    the schools and the clock it is given: telling every node of an event, and running
    work in the background."""

    async def announce(self, school: SchoolId, event: events.Event) -> None:
        """Publish ``event`` on the school's channel and handle it on this node too."""

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background; its failure is logged, never lost."""


class Noticeboard:
    """Noticeboard is responsible for broadcasts and polls: requests, events and releases."""

    def __init__(self, store: BroadcastStore, hub: Hub, schools: Schools, clock: Clock,
                 host: NoticeboardHost) -> None:
        self.store = store
        self.hub = hub
        self.schools = schools
        self.clock = clock
        self._host = host
        # Published broadcasts by (school, id), for the recipients' requests: what they
        # read of it (questions, deadline, author…) never changes once published. The
        # figures in it are stale and never used from here.
        self._headers: dict[tuple[SchoolId, int], Broadcast] = {}

    async def _establishment(self, school: SchoolId) -> Establishment:
        """The school's current snapshot: cached, refreshed by notices and the tick."""
        current = self.schools.current(school)
        return current if current is not None else await self.schools.get(school)

    async def _header(self, school: SchoolId, bid: int) -> Broadcast:
        key = (school, bid)
        b = self._headers.get(key)
        if b is None:
            b = await self.store.get_broadcast(school, bid)
            if b.status == "published":
                if len(self._headers) >= MAX_CACHED:
                    del self._headers[next(iter(self._headers))]
                self._headers[key] = b
        return b

    # ------------------------------------------------------------------ views

    def _common(self, b: Broadcast, est: Establishment, now: datetime) -> dict[str, Any]:
        poll = None
        if b.kind is Kind.POLL:
            poll = {"anonymous": b.anonymous, "deadline": _iso(b.deadline),
                    "closed": b.deadline is not None and now >= b.deadline,
                    "questions": questions_to_json(b.questions)}
        return {"id": b.id, "kind": b.kind.value, "title": b.title, "body": b.body,
                "author": est.person(b.author), "published_at": _iso(b.published_at),
                "expires_at": _iso(b.expires_at), "ack_requested": b.ack_requested,
                "poll": poll}

    def recipient_view(self, b: Broadcast, r: Receipt, est: Establishment,
                       now: datetime) -> dict[str, Any]:
        return {**self._common(b, est, now), "mine": mine_json(r), "stats": None}

    def author_view(self, b: Broadcast, est: Establishment, now: datetime) -> dict[str, Any]:
        return {**self._common(b, est, now), "mine": None, "stats": stats_json(b.stats),
                "status": b.status, "publish_at": _iso(b.publish_at),
                "to": target_to_json(b.target),
                "dropped": None if b.dropped is None else {"code": b.dropped[0],
                                                           "message": b.dropped[1]}}

    # ------------------------------------------------------------------ authors

    async def scope(self, school: SchoolId, user: UserId, q: str | None) -> dict[str, Any]:
        """What ``user`` may address, for a picker (and people matching ``q``)."""
        est = await self._establishment(school)
        gk = est.gatekeeper
        decision, scope = gk.broadcast_scope(user)
        classes = gk.state.directory.classes
        out: dict[str, Any] = {
            "allowed": decision.allowed,
            "code": None if decision.code is None else decision.code.value,
            "message": decision.message if not decision.allowed else "",
            "roles": [] if scope is None else sorted(r.value for r in scope.roles),
            "whole_school": scope is not None and scope.classes is None,
            "classes": [] if scope is None else [
                {"id": c, "name": classes[c].name}
                for c in sorted(classes if scope.classes is None else scope.classes)
                if c in classes],
            # What a poll published now gets without a deadline: the form shows it.
            "default_deadline": _iso(gk.window.day_end(self.clock(), DEFAULT_POLL_DAYS))}
        if q is not None and scope is not None:
            query = Query.parse(q, classes)
            found = []
            for u in sorted(gk.state.directory.users.values(),
                            key=lambda u: (u.last_name, u.first_name, u.id)):
                if query.finds(est, u) and gk.may_broadcast_to(user, u.id):
                    found.append(est.person(u.id))
                    if len(found) == MAX_PEOPLE:
                        break
            out["people"] = found
        return out

    async def preview(self, school: SchoolId, user: UserId, to: object) -> dict[str, Any]:
        """How many would receive a broadcast to ``to`` now, or the refusal."""
        target = parse_target(to)
        est = await self._establishment(school)
        decision, recipients = est.gatekeeper.check_broadcast(user, target, self.clock())
        decision.raise_for_refusal()
        return {"recipients": len(recipients)}

    async def create(self, school: SchoolId, user: UserId,
                     request: object) -> tuple[dict[str, Any], bool]:
        """Create a broadcast (published now, or scheduled); ``(author view, created)``.

        A retry with a ``client_id`` already used answers the original, whatever
        the rules say now (the window may have closed since the first attempt).
        """
        now = self.clock()
        draft = parse_draft(request, now)
        est = await self._establishment(school)
        decision, recipients = est.gatekeeper.check_broadcast(user, draft.target, now)
        earlier = await self.store.find_broadcast(school, user, draft.client_id)
        if earlier is not None:
            return self.author_view(earlier, est, now), False
        decision.raise_for_refusal()
        publish_at = draft.publish_at or decision.hold_until or now
        scheduled = publish_at > now
        if not scheduled and not recipients:
            raise Refused(ErrorCode.BAD_REQUEST,
                          "Personne ne la recevrait : ce public est vide.",
                          params={"field": "to", "reason": "no_recipient"})
        deadline = draft.deadline
        if draft.kind is Kind.POLL and deadline is None:
            # The end of a school day, never the minute it was published at.
            deadline = est.gatekeeper.window.day_end(publish_at, DEFAULT_POLL_DAYS)
        b, new = await self.store.create_broadcast(
            school, user, draft, now=now, publish_at=publish_at, deadline=deadline,
            recipients=None if scheduled else recipients,
            held_for_hours=draft.publish_at is None and decision.hold_until is not None)
        if new:
            await self._host.announce(school, events.BroadcastPublished(
                school, b.id, user, () if scheduled else tuple(recipients)))
        return self.author_view(b, est, now), new

    async def _authored(self, school: SchoolId, user: UserId, bid: int) -> Broadcast:
        """The broadcast if ``user`` wrote it: ``forbidden`` for a recipient, else not_found."""
        b = await self.store.get_broadcast(school, bid)
        if b.author == user:
            return b
        if await self.store.receipt(school, bid, user) is not None:
            raise Refused(ErrorCode.FORBIDDEN, "Seul son auteur voit les résultats.",
                          params={"reason": "author_only"})
        raise NotFound(f"no broadcast {bid} for you")

    async def results(self, school: SchoolId, user: UserId, bid: int) -> dict[str, Any]:
        """The author's results. Anonymous polls: counts and texts only, no identities."""
        b = await self._authored(school, user, bid)
        est = await self._establishment(school)
        est.gatekeeper.check_read(user).raise_for_refusal()
        receipts = await self.store.receipts(school, bid)
        texts: list[list[str] | None] = [
            sorted(str(r.answers[i]["text"]) for r in receipts
                   if r.answers is not None and r.answers[i]["text"])  # blanks: no text
            if q.kind is QuestionKind.TEXT else None
            for i, q in enumerate(b.questions)]
        out: dict[str, Any] = {"stats": stats_json(b.stats), "texts": texts,
                               "pending": None, "responses": None}
        if b.anonymous:
            return out

        def people(rows: Sequence[Receipt]) -> list[dict[str, Any]]:
            found = [est.person(r.user_id) for r in rows]
            return sorted(found, key=lambda p: (str(p.get("name", "")), p["id"]))

        out["pending"] = {
            "not_received": people([r for r in receipts if r.received_at is None]),
            "not_read": people([r for r in receipts if r.read_at is None]),
            "not_acknowledged": people([r for r in receipts if b.ack_requested
                                        and r.acknowledged_at is None]),
            "not_answered": people([r for r in receipts if b.kind is Kind.POLL
                                    and r.answered_at is None])}
        if b.kind is Kind.POLL:
            answered = [r for r in receipts if r.answers is not None]
            out["responses"] = sorted(
                ({"user": est.person(r.user_id), "answered_at": _iso(r.answered_at),
                  "answers": list(r.answers or ())} for r in answered),
                key=lambda x: (str(x["user"].get("name", "")), x["user"]["id"]))
        return out

    async def remind(self, school: SchoolId, user: UserId, bid: int) -> dict[str, Any]:
        """Nudge the recipients who have not done what the broadcast asks."""
        b = await self._authored(school, user, bid)
        if b.status != "published":
            raise Refused(ErrorCode.CONFLICT,
                          "Elle n'est pas encore publiée : personne à relancer.",
                          params={"reason": "not_published"})
        now = self.clock()
        est = await self._establishment(school)
        gk = est.gatekeeper
        decision, _ = gk.check_broadcast(user, b.target, now)
        decision.raise_for_refusal()
        if decision.hold_until is not None:  # defer mode holds broadcasts, not reminders
            raise Refused(ErrorCode.OUTSIDE_HOURS,
                          "Les relances ne partent que pendant les horaires.",
                          retry_at=decision.hold_until,
                          params={"opens_at": _iso(decision.hold_until)})
        if b.kind is Kind.POLL and b.deadline is not None and now >= b.deadline:
            raise Refused(ErrorCode.POLL_CLOSED, params={"deadline": _iso(b.deadline)})
        if b.reminded_at is not None and now < b.reminded_at + REMINDER_INTERVAL:
            minutes = int(REMINDER_INTERVAL.total_seconds() // 60)
            raise Refused(ErrorCode.RATE_LIMITED, f"Une relance toutes les {minutes} minutes.",
                          retry_at=b.reminded_at + REMINDER_INTERVAL,
                          params={"limit": "reminders", "minutes": minutes})
        receipts = await self.store.receipts(school, bid)
        pending = [r.user_id for r in receipts if gk.may_broadcast_to(user, r.user_id) and (
            r.answered_at is None if b.kind is Kind.POLL
            else r.acknowledged_at is None if b.ack_requested else r.read_at is None)]
        await self.store.remind_broadcast(school, bid, pending, now=now)
        if pending:
            await self._host.announce(school, events.BroadcastReminded(
                school, bid, tuple(pending), user, b.title, frames.iso(now)))
        return {"reminded": len(pending)}

    # ------------------------------------------------------------------ recipients

    async def listing(self, school: SchoolId, user: UserId) -> dict[str, Any]:
        """The first page of what the user received (marked received) and of what they
        wrote, with each one's ``more`` and ``next``."""
        received, received_next = await self.received_page(school, user)
        sent, sent_next = await self.sent_page(school, user)
        return {"received": received, "sent": sent,
                "more": {"received": received_next is not None, "sent": sent_next is not None},
                "next": {"received": received_next, "sent": sent_next}}

    async def received_page(self, school: SchoolId, user: UserId, before: str | None = None,
                            limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
        """A page of what the user received, newest first (and marks it received), and
        the ``before`` of the next page (``None`` on the last)."""
        est = await self._establishment(school)
        est.gatekeeper.check_read(user).raise_for_refusal()
        now = self.clock()
        rows = await self.store.broadcasts_received(
            school, user, now=now, limit=limit + 1,
            before=None if before is None else summaries.read_cursor(before))
        items = []
        for b, r in rows[:limit]:
            if r.received_at is None:
                r, _ = await self._received(school, b, user, now)
            items.append(self.recipient_view(b, r, est, now))
        after = None
        if len(rows) > limit:
            last = rows[limit - 1][0]
            assert last.published_at is not None
            after = summaries.cursor(last.published_at, last.id)
        return items, after

    async def sent_page(self, school: SchoolId, user: UserId, before: str | None = None,
                        limit: int = PAGE) -> tuple[list[dict[str, Any]], str | None]:
        """A page of what the user wrote, newest first, and the ``before`` of the next."""
        est = await self._establishment(school)
        est.gatekeeper.check_read(user).raise_for_refusal()
        now = self.clock()
        rows = await self.store.broadcasts_sent(school, user, limit=limit + 1,
                                                before=None if before is None
                                                else _sent_cursor(before))
        after = str(rows[limit - 1].id) if len(rows) > limit else None
        return [self.author_view(b, est, now) for b in rows[:limit]], after

    async def _received(self, school: SchoolId, b: Broadcast, user: UserId,
                        now: datetime) -> tuple[Receipt, BroadcastStats | None]:
        stats = await self.store.mark_broadcast_received(school, b.id, [user], now=now)
        if stats is not None:
            await self._figures(school, b, stats)
        receipt = await self.store.receipt(school, b.id, user)
        assert receipt is not None
        return receipt, stats

    async def catch_up(self, member: Member) -> None:
        """A new connection: deliver what was published while the user had none open.

        Those are exactly the broadcasts the user has not received yet; each is
        delivered once (then marked received), oldest first.
        """
        school, user = member.school_id, member.user_id
        now = self.clock()
        missed = await self.store.broadcasts_received(school, user, now=now, undelivered=True)
        if not missed:
            return
        est = await self._establishment(school)
        for b, _ in reversed(missed):
            receipt, _ = await self._received(school, b, user, now)
            member.push(Frame(frames.broadcast(self.recipient_view(b, receipt, est, now))))

    async def view(self, school: SchoolId, user: UserId, bid: int) -> dict[str, Any]:
        est = await self._establishment(school)
        now = self.clock()
        b = await self.store.get_broadcast(school, bid)
        if b.author == user:
            est.gatekeeper.check_read(user).raise_for_refusal()
            return self.author_view(b, est, now)
        receipt = await self._receipt(school, b, user, est)
        if receipt.received_at is None:
            receipt, _ = await self._received(school, b, user, now)
        return self.recipient_view(b, receipt, est, now)

    async def _receipt(self, school: SchoolId, b: Broadcast, user: UserId,
                       est: Establishment) -> Receipt:
        receipt = await self.store.receipt(school, b.id, user)
        if receipt is None:
            raise NotFound(f"no broadcast {b.id} for you")
        est.gatekeeper.check_read(user).raise_for_refusal()
        return receipt

    async def mark_read(self, school: SchoolId, user: UserId, bid: int, *,
                        acknowledge: bool) -> dict[str, Any]:
        est = await self._establishment(school)
        est.gatekeeper.check_read(user).raise_for_refusal()
        b = await self._header(school, bid)
        if acknowledge and not b.ack_requested:
            await self._receipt(school, b, user, est)  # a stranger learns nothing of it
            raise Refused(ErrorCode.BAD_REQUEST, "Aucun accusé de lecture n'a été demandé.",
                          params={"reason": "no_ack_requested"})
        now = self.clock()
        receipt, stats = await self.store.mark_broadcast_read(school, bid, user, now=now,
                                                              acknowledge=acknowledge)
        if stats is not None:
            await self._changed(school, b, receipt, stats)
        return self.recipient_view(b, receipt, est, now)

    async def answer(self, school: SchoolId, user: UserId, bid: int,
                     raw: object) -> dict[str, Any]:
        est = await self._establishment(school)
        b = await self._header(school, bid)
        # Recipients first: a stranger learns nothing of it, not even its questions
        # (parse_answers would describe them in its refusals).
        await self._receipt(school, b, user, est)
        if b.kind is not Kind.POLL or b.deadline is None:
            raise Refused(ErrorCode.BAD_REQUEST, "C'est une information, pas un sondage.",
                          params={"reason": "not_a_poll"})
        now = self.clock()
        est.gatekeeper.check_vote(user, b.deadline, now).raise_for_refusal()
        answers = parse_answers(b.questions, raw)
        receipt, stats = await self.store.answer_poll(school, bid, user, answers, now=now)
        await self._changed(school, b, receipt, stats)
        return self.recipient_view(b, receipt, est, now)

    async def _changed(self, school: SchoolId, b: Broadcast, receipt: Receipt,
                       stats: BroadcastStats) -> None:
        await self._figures(school, b, stats)
        await self._host.announce(school, events.BroadcastMine(school, b.id, receipt.user_id,
                                                               mine_json(receipt)))

    async def _figures(self, school: SchoolId, b: Broadcast, stats: BroadcastStats) -> None:
        await self._host.announce(school, events.BroadcastStats(school, b.id, b.author,
                                                                stats_json(stats)))

    # ------------------------------------------------------------------ publication

    async def release_due(self) -> None:
        """Publish scheduled broadcasts whose time has come, after a fresh G1–G3/G8 check.

        Every node calls this on its tick; the store hands each broadcast to one of them.
        """
        now = self.clock()
        for b in await self.store.claim_due_broadcasts(now):
            try:
                await self._release(b, now)
            except Exception:
                log.exception("publishing broadcast %s failed", b.id)

    async def _release(self, b: Broadcast, now: datetime) -> None:
        school = b.school_id
        try:
            gk = (await self.schools.get(school)).gatekeeper
        except NotFound:
            return
        decision, recipients = gk.check_broadcast(b.author, b.target, now)
        if decision.allowed and decision.hold_until is not None:
            await self.store.reschedule_broadcast(school, b.id, decision.hold_until)
            return
        if not decision.allowed or not recipients:
            code = decision.code or ErrorCode.BAD_REQUEST
            message = decision.message or "Plus personne n'est là pour la recevoir."
            params = wire_params(code, decision.params if decision.code else
                                 {"reason": "no_recipient"}, decision.retry_at)
            await self.store.drop_broadcast(school, b.id, code.value, message)
            await self._host.announce(school, events.BroadcastDropped(
                school, b.id, b.author, code.value, message, params))
            return
        await self.store.publish_broadcast(school, b.id, recipients, now=now)
        await self._host.announce(school, events.BroadcastPublished(school, b.id, b.author,
                                                                    tuple(recipients)))

    # ------------------------------------------------------------------ events

    def register(self, dispatch: events.Dispatch) -> None:
        """Handle the events of the table above, from this node or another."""
        dispatch.on(events.BroadcastPublished, self._on_published)
        dispatch.on(events.BroadcastStats, self._on_stats)
        dispatch.on(events.BroadcastMine, self._on_mine)
        dispatch.on(events.BroadcastReminded, self._on_reminded)
        dispatch.on(events.BroadcastDropped, self._on_dropped)

    def _to(self, school: SchoolId, users: Sequence[UserId], frame: Frame) -> None:
        for u in users:
            for member in self.hub.of_user(school, u):
                member.push(frame)

    def _on_published(self, ev: events.BroadcastPublished) -> None:
        self._host.spawn(self._published(ev.school, ev.broadcast, ev.author,
                                         list(ev.recipients)))

    def _on_stats(self, ev: events.BroadcastStats) -> None:
        self._to(ev.school, [ev.author],
                 Frame(frames.broadcast_stats(ev.broadcast, dict(ev.stats))))

    def _on_mine(self, ev: events.BroadcastMine) -> None:
        self._to(ev.school, [ev.user], Frame(frames.broadcast_mine(ev.broadcast, dict(ev.mine))))

    def _on_reminded(self, ev: events.BroadcastReminded) -> None:
        est = self.schools.current(ev.school)
        author = est.person(ev.author) if est is not None else {"id": ev.author}
        self._to(ev.school, ev.recipients,
                 Frame(frames.broadcast_reminder(ev.broadcast, ev.title, author, ev.at)))

    def _on_dropped(self, ev: events.BroadcastDropped) -> None:
        self._to(ev.school, [ev.author],
                 Frame(frames.broadcast_dropped(ev.broadcast, ev.code, ev.message,
                                                ev.params)))

    async def _published(self, school: SchoolId, bid: int, author: UserId,
                         users: list[UserId]) -> None:
        here = [m for u in users for m in self.hub.of_user(school, u)]
        authors = self.hub.of_user(school, author)
        if not here and not authors:
            return
        b = await self.store.get_broadcast(school, bid)
        est = await self._establishment(school)
        now = self.clock()
        if here:
            present = sorted({m.user_id for m in here})
            stats = await self.store.mark_broadcast_received(school, bid, present, now=now)
            # One frame for all: every recipient's state is the same, just received.
            first = Receipt(bid, UserId(""), now, None, None, None, None, None)
            view = self.recipient_view(b, first, est, now)
            frame = Frame(frames.broadcast(view))
            for member in here:
                member.push(frame)
            if stats is not None:
                await self._figures(school, b, stats)
                b = await self.store.get_broadcast(school, bid)
        if authors:
            frame = Frame(frames.broadcast(self.author_view(b, est, now)))
            for member in authors:
                member.push(frame)


def _sent_cursor(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_INT):
        raise Refused(ErrorCode.BAD_REQUEST, "'before' doit être le 'next' d'une page "
                      "précédente.", params={"field": "before"})
    return int(text)
