"""Broker channel names: one per discussion, per user, per school, and per node.

Layout::

    preau:{<school>}:d:<discussion id>    messages, joins, leaves, receipts, typing
    preau:{<school>}:school               policy notices, new discussions (with the users
                                          concerned), presence, held messages dropped
    preau:node:<node id>                  health probes a node sends to itself (/readyz)
    preau:{<school>}:u:<user id>          reserved for per-person events; unused today

Why this layout:

- **Per discussion.** A message costs one ``PUBLISH``, and Redis delivers it once
  to each node that subscribed, that is to each node with at least one local
  participant of that discussion connected (one broker subscription per channel
  per node); the node then fans it out to its own connections. Nodes without
  participants receive nothing, so traffic grows with the conversations a node
  hosts, not with the school.
- **Per school.** Settings changes (hours, profiles switched off…) reach every
  node serving that school, which re-reads the settings. Events about people
  rather than a discussion they already follow (added to a new discussion,
  presence, a held message dropped) travel here too, naming the users: one
  PUBLISH per event instead of one per person, at the cost of every node of the
  school reading it. A per-user channel would trade the other way; the builder is
  kept for that.

The school id sits in a Redis Cluster hash tag (``{...}``): every channel of one
establishment hashes to the same slot, so Redis can later be split by school with
sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``, Redis 7) without renaming a channel.
Node channels carry no school.

Ids are checked: they must match ``[A-Za-z0-9._-]+`` (what the directory
accepts), so a name can never smuggle a ``{``, ``}`` or ``:`` and break the tag or
the parse. :func:`parse_channel` is the inverse of the four builders.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..model import DiscussionId, SchoolId, UserId

__all__ = [
    "ChannelKind",
    "ChannelName",
    "discussion_channel",
    "node_channel",
    "parse_channel",
    "school_channel",
    "user_channel",
]

_PREFIX = "preau"
_ID = re.compile(r"[A-Za-z0-9._-]+")
_PARSE = re.compile(
    r"preau:(?:\{(?P<school>[A-Za-z0-9._-]+)\}:(?:d:(?P<discussion>0|[1-9][0-9]*)"
    r"|u:(?P<user>[A-Za-z0-9._-]+)|(?P<whole>school))|node:(?P<node>[A-Za-z0-9._-]+))"
)


class ChannelKind(enum.Enum):
    """What a channel carries."""

    DISCUSSION = "discussion"
    USER = "user"
    SCHOOL = "school"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class ChannelName:
    """A parsed channel name: its kind and the ids in it (``None`` where not part of it)."""

    kind: ChannelKind
    school_id: SchoolId | None = None
    discussion_id: DiscussionId | None = None
    user_id: UserId | None = None
    node_id: str | None = None


def _checked(kind: str, value: str) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise ValueError(f"invalid {kind} id for a channel name: {value!r}")
    return value


def discussion_channel(school_id: SchoolId, discussion_id: DiscussionId) -> str:
    """``preau:{<school>}:d:<id>``: everything that happens in one discussion."""
    if isinstance(discussion_id, bool) or not isinstance(discussion_id, int) or discussion_id < 0:
        raise ValueError(f"invalid discussion id for a channel name: {discussion_id!r}")
    return f"{_PREFIX}:{{{_checked('school', school_id)}}}:d:{discussion_id}"


def user_channel(school_id: SchoolId, user_id: UserId) -> str:
    """``preau:{<school>}:u:<id>``: events targeted at one user."""
    return f"{_PREFIX}:{{{_checked('school', school_id)}}}:u:{_checked('user', user_id)}"


def school_channel(school_id: SchoolId) -> str:
    """``preau:{<school>}:school``: the school's settings changed."""
    return f"{_PREFIX}:{{{_checked('school', school_id)}}}:school"


def node_channel(node_id: str) -> str:
    """``preau:node:<id>``: a node's private channel for health probes."""
    return f"{_PREFIX}:node:{_checked('node', node_id)}"


def parse_channel(channel: str) -> ChannelName:
    """The kind and ids of a channel built by this module; ``ValueError`` otherwise."""
    m = _PARSE.fullmatch(channel)
    if m is None:
        raise ValueError(f"not a Préau channel name: {channel!r}")
    if m["node"] is not None:
        return ChannelName(ChannelKind.NODE, node_id=m["node"])
    school = SchoolId(m["school"])
    if m["discussion"] is not None:
        return ChannelName(
            ChannelKind.DISCUSSION, school, discussion_id=DiscussionId(int(m["discussion"]))
        )
    if m["user"] is not None:
        return ChannelName(ChannelKind.USER, school, user_id=UserId(m["user"]))
    return ChannelName(ChannelKind.SCHOOL, school)
