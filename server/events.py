"""The events nodes publish to each other: one frozen type per kind, versioned.

Every event travels as a msgpack map. Whatever its version, the map keeps an
*envelope* that any node can read: ``k`` (the kind), ``s`` (the school) and, for
an event about one discussion, ``d`` (the discussion); and ``v``, the version of
the rest (absent: version 1). A node that cannot read an event (a newer version,
a kind it does not know, a malformed map) still learns from the envelope where to
look: it reads that discussion, or that school, again from the store (see
``Node.unreadable``), so an event is never silently lost.

Versions (``docs/design/events.md``):

- **1**: the maps of Préau ≤ 0.x, without ``v``. A message's time ``t`` is ISO 8601
  text.
- **2**: ``v: 2`` on every event; a message's time ``t`` is an integer, microseconds
  since 1970 UTC (no text to parse per message on every node).

A node reads every version up to :data:`CURRENT` and writes the one it is told
(``PREAU_EVENTS_VERSION``): during a rolling upgrade the new nodes write version 1
until no old node is left, then version 2 (``docs/operating.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar, cast

from .model import DiscussionId, SchoolId, UserId

__all__ = [
    "CURRENT",
    "KINDS",
    "OLDEST",
    "BroadcastDropped",
    "BroadcastMine",
    "BroadcastPublished",
    "BroadcastReminded",
    "BroadcastStats",
    "DiscussionAdded",
    "Dispatch",
    "Event",
    "HeldDropped",
    "Joined",
    "Left",
    "Message",
    "PolicyChanged",
    "Presence",
    "Read",
    "SessionsEnded",
    "Typing",
    "Unreadable",
    "decode",
    "encode",
    "encode_version",
]

OLDEST = 1  # the oldest version this code writes (and reads)
CURRENT = 2  # the newest version this code reads (and writes, unless told otherwise)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Unreadable(Exception):
    """An event this node cannot read, with what its envelope still tells."""

    def __init__(self, reason: str, *, kind: object = None, version: object = None,
                 school: SchoolId | None = None,
                 discussion: DiscussionId | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.version = version
        self.school = school
        self.discussion = discussion


def _params(data: Mapping[str, Any]) -> dict[str, Any]:
    """A refusal's params, absent in events from nodes of the previous release."""
    p = data.get("p")
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise ValueError("'p' must be a map")
    return dict(p)


def _envelope(ev: Any, version: int) -> dict[str, Any]:
    """The fields every version keeps: the kind, the school, and (from 2) the version."""
    out: dict[str, Any] = {"k": ev.KIND, "s": ev.school}
    if version >= 2:
        out["v"] = version
    return out


def encode_version(version: int) -> int:
    """``version`` if this code can write it, else ``ValueError``."""
    if isinstance(version, bool) or not OLDEST <= version <= CURRENT:
        raise ValueError(f"events version {version} is not between {OLDEST} and {CURRENT}")
    return version


_check = encode_version


# ---------------------------------------------------------------------- discussions


@dataclass(frozen=True, slots=True)
class Message:
    """A message stored in a discussion (published once, by the node that stored it)."""

    KIND: ClassVar[str] = "m"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    seq: int
    sender: UserId
    client_id: str
    body: str
    at: datetime
    hidden_from: frozenset[UserId] = frozenset()

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "q": self.seq, "f": self.sender,
                    "c": self.client_id, "b": self.body,
                    "t": self.at.isoformat() if version == 1
                    else (self.at - _EPOCH) // _MICROSECOND})
        if self.hidden_from:  # rare: only then does the publication carry it
            out["h"] = sorted(self.hidden_from)
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Message:
        t = data["t"]
        at = (datetime.fromisoformat(t) if version == 1
              else _EPOCH + _int(t) * _MICROSECOND)
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])), _int(data["q"]),
                   UserId(_str(data["f"])), _str(data["c"]), _str(data["b"]), at,
                   frozenset(UserId(_str(u)) for u in data.get("h", ())))


@dataclass(frozen=True, slots=True)
class Joined:
    """Someone was invited into a discussion (or came back)."""

    KIND: ClassVar[str] = "j"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    user: UserId
    invited_by: UserId | None

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "u": self.user, "i": self.invited_by})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Joined:
        invited_by = data.get("i")
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])),
                   UserId(_str(data["u"])),
                   None if invited_by is None else UserId(_str(invited_by)))


@dataclass(frozen=True, slots=True)
class Left:
    """Someone left a discussion."""

    KIND: ClassVar[str] = "l"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    user: UserId

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "u": self.user})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Left:
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])),
                   UserId(_str(data["u"])))


@dataclass(frozen=True, slots=True)
class Read:
    """Someone's read position in a discussion moved to ``seq``."""

    KIND: ClassVar[str] = "r"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    user: UserId
    seq: int

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "u": self.user, "q": self.seq})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Read:
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])),
                   UserId(_str(data["u"])), _int(data["q"]))


@dataclass(frozen=True, slots=True)
class Typing:
    """Someone is typing in a discussion."""

    KIND: ClassVar[str] = "y"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    user: UserId

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "u": self.user})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Typing:
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])),
                   UserId(_str(data["u"])))


# ---------------------------------------------------------------------- school


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's first connection opened (``online``), or their last one closed."""

    KIND: ClassVar[str] = "p"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    user: UserId
    online: bool
    discussions: tuple[DiscussionId, ...]

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"u": self.user, "on": self.online, "ds": list(self.discussions)})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> Presence:
        return cls(SchoolId(_str(data["s"])), UserId(_str(data["u"])), bool(data["on"]),
                   tuple(DiscussionId(_int(d)) for d in data["ds"]))


@dataclass(frozen=True, slots=True)
class DiscussionAdded:
    """``users`` were added to a discussion (a new one, or by an invitation)."""

    KIND: ClassVar[str] = "n"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    discussion: DiscussionId
    users: tuple[UserId, ...]

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"d": self.discussion, "us": list(self.users)})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> DiscussionAdded:
        return cls(SchoolId(_str(data["s"])), DiscussionId(_int(data["d"])),
                   tuple(UserId(_str(u)) for u in data["us"]))


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """The school's settings or preferences changed: read them again."""

    KIND: ClassVar[str] = "v"
    VERSION: ClassVar[int] = 2
    school: SchoolId

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        return _envelope(self, _check(version))

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> PolicyChanged:
        return cls(SchoolId(_str(data["s"])))


@dataclass(frozen=True, slots=True)
class HeldDropped:
    """A held message (``discussion`` None: a held start) was refused at its release."""

    KIND: ClassVar[str] = "x"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    user: UserId
    client_id: str
    discussion: DiscussionId | None
    code: str
    message: str
    # The refusal's params (docs/protocol.md); optional on the wire, so that nodes
    # of the previous release read these events and ignore them.
    params: dict[str, Any] = field(default_factory=dict)

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"u": self.user, "c": self.client_id, "d": self.discussion,
                    "code": self.code, "m": self.message})
        if version >= 2 and self.params:
            out["p"] = self.params
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> HeldDropped:
        d = data.get("d")
        return cls(SchoolId(_str(data["s"])), UserId(_str(data["u"])), _str(data["c"]),
                   None if d is None else DiscussionId(_int(d)), _str(data["code"]),
                   _str(data["m"]), _params(data))


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """Sign-in sessions ended (logout, the provider's logout, reuse of a refresh token,
    deactivation): their access tokens are refused and their connections closed.

    New in this release: a node of the previous one cannot read it and reads the school
    again instead (``Node.unreadable``), which is harmless; it does not close the
    sessions' connections (their tokens expire within ``PREAU_TOKEN_TTL``)."""

    KIND: ClassVar[str] = "se"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    sessions: tuple[str, ...]
    reason: str

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"ss": list(self.sessions), "why": self.reason})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> SessionsEnded:
        return cls(SchoolId(_str(data["s"])), tuple(_str(x) for x in data["ss"]),
                   _str(data["why"]))


# ---------------------------------------------------------------------- noticeboard


@dataclass(frozen=True, slots=True)
class BroadcastPublished:
    """A broadcast was created or published; ``recipients`` empty: scheduled."""

    KIND: ClassVar[str] = "b"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    broadcast: int
    author: UserId
    recipients: tuple[UserId, ...]

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"id": self.broadcast, "a": self.author, "us": list(self.recipients)})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> BroadcastPublished:
        return cls(SchoolId(_str(data["s"])), _int(data["id"]), UserId(_str(data["a"])),
                   tuple(UserId(_str(u)) for u in data["us"]))


@dataclass(frozen=True, slots=True)
class BroadcastStats:
    """A broadcast's figures changed: for its author (``stats`` as sent to clients)."""

    KIND: ClassVar[str] = "bs"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    broadcast: int
    author: UserId
    stats: Mapping[str, Any]

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"id": self.broadcast, "a": self.author, "st": dict(self.stats)})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> BroadcastStats:
        return cls(SchoolId(_str(data["s"])), _int(data["id"]), UserId(_str(data["a"])),
                   _map(data["st"]))


@dataclass(frozen=True, slots=True)
class BroadcastMine:
    """A recipient read, acknowledged or answered: their own view, for their other
    connections (``mine`` as sent to clients)."""

    KIND: ClassVar[str] = "bm"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    broadcast: int
    user: UserId
    mine: Mapping[str, Any]

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"id": self.broadcast, "u": self.user, "mine": dict(self.mine)})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> BroadcastMine:
        return cls(SchoolId(_str(data["s"])), _int(data["id"]), UserId(_str(data["u"])),
                   _map(data["mine"]))


@dataclass(frozen=True, slots=True)
class BroadcastReminded:
    """The author sent a reminder to ``recipients``."""

    KIND: ClassVar[str] = "br"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    broadcast: int
    recipients: tuple[UserId, ...]
    author: UserId
    title: str
    at: str  # as sent to clients

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"id": self.broadcast, "us": list(self.recipients), "a": self.author,
                    "t": self.title, "at": self.at})
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> BroadcastReminded:
        return cls(SchoolId(_str(data["s"])), _int(data["id"]),
                   tuple(UserId(_str(u)) for u in data["us"]), UserId(_str(data["a"])),
                   _str(data["t"]), _str(data["at"]))


@dataclass(frozen=True, slots=True)
class BroadcastDropped:
    """A scheduled broadcast was refused at its release: for its author."""

    KIND: ClassVar[str] = "bx"
    VERSION: ClassVar[int] = 2
    school: SchoolId
    broadcast: int
    author: UserId
    code: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)  # optional, as in HeldDropped

    def encode(self, version: int = CURRENT) -> dict[str, Any]:
        out = _envelope(self, _check(version))
        out.update({"id": self.broadcast, "a": self.author, "code": self.code,
                    "m": self.message})
        if version >= 2 and self.params:
            out["p"] = self.params
        return out

    @classmethod
    def decode(cls, data: Mapping[str, Any], version: int) -> BroadcastDropped:
        return cls(SchoolId(_str(data["s"])), _int(data["id"]), UserId(_str(data["a"])),
                   _str(data["code"]), _str(data["m"]), _params(data))


Event = (Message | Joined | Left | Read | Typing | Presence | DiscussionAdded | PolicyChanged
         | HeldDropped | SessionsEnded | BroadcastPublished | BroadcastStats | BroadcastMine
         | BroadcastReminded | BroadcastDropped)

_TYPES: tuple[type[Event], ...] = (
    Message, Joined, Left, Read, Typing, Presence, DiscussionAdded, PolicyChanged, HeldDropped,
    SessionsEnded, BroadcastPublished, BroadcastStats, BroadcastMine, BroadcastReminded,
    BroadcastDropped)

KINDS: dict[str, type[Event]] = {t.KIND: t for t in _TYPES}


def encode(event: Event, version: int = CURRENT) -> dict[str, Any]:
    """``event`` as a map of ``version`` (or of its type's newest, if older)."""
    return event.encode(min(version, event.VERSION))


def decode(data: object) -> Event:
    """The event of a map of any version this node reads; :class:`Unreadable` if not."""
    if not isinstance(data, Mapping):
        raise Unreadable(f"not a map but {type(data).__name__}")
    kind, version = data.get("k"), data.get("v", 1)
    school = data.get("s")
    d = data.get("d")
    where = {"kind": kind, "version": version,
             "school": SchoolId(school) if isinstance(school, str) else None,
             "discussion": DiscussionId(d) if isinstance(d, int) and not isinstance(d, bool)
             else None}
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise Unreadable(f"unknown kind {kind!r}", **where)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Unreadable(f"version {version!r} is not a version", **where)
    if version > cls.VERSION:
        raise Unreadable(f"version {version} of {kind!r} is newer than {cls.VERSION}", **where)
    try:
        return cls.decode(data, version)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise Unreadable(f"malformed {kind!r} event: {exc!r}", **where) from exc


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, not {value!r}")
    return value


def _map(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a map, not {value!r}")
    return cast(Mapping[str, Any], value)


E = TypeVar("E", bound=Event)


class Dispatch:
    """The handlers of a node, one per event type: a table, not a chain of ``if``."""

    def __init__(self) -> None:
        self._table: dict[type[Any], Callable[[Any], None]] = {}

    def on(self, kind: type[E], handler: Callable[[E], None]) -> None:
        self._table[kind] = handler

    def __call__(self, event: Event) -> None:
        self._table[type(event)](event)

    def missing(self) -> list[str]:
        """The kinds nobody handles (none, once the node and noticeboard registered)."""
        return sorted(t.KIND for t in _TYPES if t not in self._table)
