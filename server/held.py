"""Held messages: written outside the hours in defer mode, delivered at the opening.

Every node calls :meth:`HeldRelease.release_due` on its tick; the store hands each
held item to exactly one of them. The item is checked again at its release (the
rules, the members or the author's rights may have changed meanwhile): it is
posted, held again (the window closed again), or dropped and its author told.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, Protocol

from .clock import Clock
from .errors import ErrorCode, MembersChanged, NotFound, wire_params
from .gatekeeper import refuse
from .model import DiscussionMembers, SchoolId, UserId
from .schools import Schools
from .store import AlreadyStarted, HeldMessage, Store, StoredMessage

__all__ = ["HeldHost", "HeldRelease"]

log = logging.getLogger("preau.node")


class HeldHost(Protocol):
    """What releasing a held item needs of the node."""

    async def create_discussion(self, school: SchoolId, user: UserId, subject: str,
                                to: Sequence[UserId], body: str, client_id: str,
                                now: datetime) -> StoredMessage:
        """Start a discussion with its first message, and announce it;
        :class:`~server.store.AlreadyStarted` if it was started already."""

    async def posted(self, school: SchoolId, msg: StoredMessage) -> None:
        """A message just stored: deliver it here and publish it to the other nodes."""

    async def held_dropped(self, school: SchoolId, held: HeldMessage, code: ErrorCode,
                           message: str, params: Mapping[str, Any]) -> None:
        """Tell the author (on every node) that their held item was refused."""


class HeldRelease:
    """HeldRelease is responsible for delivering held messages whose opening has come."""

    def __init__(self, store: Store, schools: Schools, clock: Clock, host: HeldHost) -> None:
        self.store = store
        self.schools = schools
        self.clock = clock
        self._host = host

    async def release_due(self) -> None:
        """Deliver held messages (and make held broadcasts due) whose opening has come,
        or whose school's window is open now, after a fresh policy check.

        A message whose author lost the right meanwhile is dropped and the author told.
        """
        now = self.clock()
        await self._release_opened(now)
        for held in await self.store.claim_due(now):
            try:
                await self._release(held, now)
            except Exception:
                log.exception("releasing held message %s failed", held.id)

    async def _release_opened(self, now: datetime) -> None:
        """Make due now what waits for an opening of a window that is open already.

        Items are held until the opening computed when they were held; the window may
        open sooner (the admin widens the hours, on any node, or switches them off).
        Every school with held items is looked at, connected here or not; the store's
        claim still hands each item to a single node.
        """
        for school in await self.store.schools_holding(now):
            try:
                est = await self.schools.get(school)
            except NotFound:
                continue
            if est.gatekeeper.window_state(now).is_open:
                await self.store.release_for_opening(school, now)

    async def _release(self, held: HeldMessage, now: datetime) -> None:
        school, user = held.school_id, held.sender
        try:
            gk = (await self.schools.get(school)).gatekeeper
        except NotFound:
            await self.store.release_held(held.id)
            return
        members: DiscussionMembers | None = None
        if held.discussion_id is None:
            decision = gk.check_start(user, held.recipients, now)
        else:
            try:
                members = await self.store.members(school, held.discussion_id)
            except NotFound:
                members = None
            decision = (gk.check_send(user, members, now) if members is not None
                        else refuse(ErrorCode.NOT_PARTICIPANT,
                                    params={"discussion": held.discussion_id}))
        if decision.allowed and decision.hold_until is not None:
            await self.store.release_held(held.id, later=decision.hold_until)  # closed again
            return
        if decision.allowed:
            if held.discussion_id is None:
                assert held.subject is not None
                if await self.store.find_started(school, user, held.client_id) is None:
                    # Started meanwhile (the author's retry on another node): done.
                    with suppress(AlreadyStarted):
                        await self._host.create_discussion(
                            school, user, held.subject, held.recipients, held.body,
                            held.client_id, now)
            else:
                d = held.discussion_id
                assert members is not None  # allowed: the discussion exists
                # Checked again now: hidden from whoever is switched off at the release.
                try:
                    msg, new = await self.store.append_message(
                        school, d, user, held.client_id, held.body, now=now,
                        hidden_from=decision.hidden_from, members_version=members.version)
                except MembersChanged:  # checked against members of the past: next tick
                    await self.store.release_held(held.id, later=now)
                    return
                if new:
                    await self._host.posted(school, msg)
        else:
            assert decision.code is not None
            await self._host.held_dropped(
                school, held, decision.code, decision.message,
                wire_params(decision.code, decision.params, decision.retry_at))
        await self.store.release_held(held.id)
