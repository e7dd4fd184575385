"""Who on this node sees that someone read, is typing, or came online.

Read positions and typing reach only the connections whose user and the author may
exchange in that discussion now (the G6 pair rule, either way), so the invariant of
``docs/policy.md`` holds for them as for messages; they are filtered here, where the
events from every node reach local connections. Presence goes to those sharing a
discussion with the user. None of this is stored: an event lost is a frame not shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import events, frames
from .audience import Audience
from .errors import NotFound
from .hub import Frame, Hub
from .model import DiscussionId, DiscussionMembers, SchoolId, UserId
from .schools import Establishment, Schools

__all__ = ["Activity"]


class Activity:
    """Activity is responsible for pushing read positions, typing and presence here."""

    def __init__(self, hub: Hub, schools: Schools, audience: Audience, *,
                 establishment: Callable[[SchoolId], Awaitable[Establishment]],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.hub = hub
        self.schools = schools
        self.audience = audience
        self._establishment = establishment
        self._spawn = spawn

    def register(self, dispatch: events.Dispatch) -> None:
        dispatch.on(events.Read, self._on_read)
        dispatch.on(events.Typing, self._on_typing)
        dispatch.on(events.Presence, self._on_presence)

    def _on_read(self, ev: events.Read) -> None:
        self._push_activity(ev.school, ev.discussion, ev.user,
                            frames.read(ev.discussion, ev.user, ev.seq), to_self=True)

    def _on_typing(self, ev: events.Typing) -> None:
        self._push_activity(ev.school, ev.discussion, ev.user,
                            frames.typing(ev.discussion, ev.user), to_self=False)

    def _on_presence(self, ev: events.Presence) -> None:
        self._presence(ev.school, ev.user, ev.online, list(ev.discussions))

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
            est = await self._establishment(school)
            members = await self.audience.members(school, d)
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
