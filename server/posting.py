"""Whether a participant may post in a discussion now, told before they type.

A composer should not let someone write a message the server will refuse: the
``post`` object (docs/protocol.md) says, per discussion, whether a post would be
accepted now and, if not, why — the same code, sentence and params as the
refusal of a ``send`` would carry, since it is the gatekeeper's own
:meth:`~server.gatekeeper.Gatekeeper.check_send`. It rides on ``list`` entries
and on the newest ``history`` page, and a ``post`` frame updates it when the
participants change. Nothing of this runs per message: it is computed on a list,
a history and a join or leave.

Outside the hours the status says ``outside_hours`` (or ``held_until`` in defer
mode). With hours, the status also says what it will be on the other side of
the window (``when_open`` while closed, ``when_closed`` while open): a client
told by a ``window`` frame that sending opened or closed switches to it and
asks nothing (thousands of clients asking at 07:00 at once would be a herd).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from . import frames
from .audience import Audience
from .clock import Clock
from .errors import NotFound, wire_params
from .gatekeeper import Decision, Gatekeeper
from .hub import Frame, Hub
from .model import DiscussionId, DiscussionMembers, SchoolId, UserId
from .schools import Establishment

__all__ = ["PostStatus", "post_json"]


def _decision_json(decision: Decision) -> dict[str, Any]:
    if decision.allowed:
        out: dict[str, Any] = {"allowed": True}
        if decision.hold_until is not None:
            out["held_until"] = frames.iso(decision.hold_until)
        return out
    assert decision.code is not None
    return {"allowed": False, "code": decision.code.value, "message": decision.message,
            "params": wire_params(decision.code, decision.params, decision.retry_at)}


def post_json(gk: Gatekeeper, user: UserId, members: DiscussionMembers,
              now: datetime) -> dict[str, Any]:
    """The ``post`` object of ``user`` in ``members`` at ``now``."""
    out = _decision_json(gk.check_send(user, members, now))
    window = gk.window_state(now)
    if window.opens_at is not None:  # closed now: what it will be at the opening
        out["when_open"] = _decision_json(gk.check_send(user, members, window.opens_at))
    elif window.closes_at is not None:  # open now: what it will be once closed
        out["when_closed"] = _decision_json(gk.check_send(user, members, window.closes_at))
    return out


class PostStatus:
    """PostStatus is responsible for telling this node's participants of a discussion
    their new ``post`` status when someone joins or leaves it."""

    def __init__(self, hub: Hub, audience: Audience, clock: Clock, *,
                 establishment: Callable[[SchoolId], Awaitable[Establishment]],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.hub = hub
        self.audience = audience
        self.clock = clock
        self._establishment = establishment
        self._spawn = spawn

    def members_changed(self, school: SchoolId, d: DiscussionId) -> None:
        """Called after the audience forgot the old members: recompute off this call."""
        if self.hub.in_discussion(school, d):
            self._spawn(self._push(school, d))

    async def _push(self, school: SchoolId, d: DiscussionId) -> None:
        try:
            est = await self._establishment(school)
            members = await self.audience.members(school, d)
        except NotFound:
            return
        gk = est.gatekeeper
        now = self.clock()
        by_user: dict[UserId, Frame] = {}
        for member in list(self.hub.in_discussion(school, d)):
            participant = members.get(member.user_id)
            if participant is None or not participant.present:
                continue  # gone: their discussion shows they left
            frame = by_user.get(member.user_id)
            if frame is None:
                frame = by_user[member.user_id] = Frame(
                    frames.post(d, post_json(gk, member.user_id, members, now)))
            member.push(frame)
