"""The frames the server sends to clients, sans I/O: plain maps, one function per type.

Everything a client receives is built here, so that the wire format of
``docs/protocol.md`` reads in one place; :mod:`server.protocol` turns a map into
text or bytes, and :class:`server.hub.Frame` makes sure that happens once per
encoding however many connections receive it. A map built here is handed to a
``Frame`` and never changed afterwards (frames are shared between connections).

Nothing here does I/O or knows the store: a message is anything with the fields
of one (:class:`MessageLike`), a time is a ``datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from .errors import ErrorCode, wire_params
from .gatekeeper import Expansion, WindowState
from .model import DiscussionId, UserId

__all__ = [
    "MessageLike",
    "access",
    "ack",
    "broadcast",
    "broadcast_dropped",
    "broadcast_mine",
    "broadcast_reminder",
    "broadcast_stats",
    "discussion",
    "discussions",
    "error",
    "held",
    "held_dropped",
    "history",
    "iso",
    "joined",
    "left",
    "message",
    "ok",
    "pong",
    "post",
    "presence",
    "read",
    "reconnect",
    "refreshed",
    "search_results",
    "skipped",
    "started",
    "token_expiring",
    "typing",
    "welcome",
    "window",
    "window_json",
]


class MessageLike(Protocol):
    """The fields of a stored message that its frame shows."""

    @property
    def discussion_id(self) -> DiscussionId: ...

    @property
    def seq(self) -> int: ...

    @property
    def sender(self) -> UserId: ...

    @property
    def client_id(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, the protocol's time format."""
    return dt.isoformat().replace("+00:00", "Z")


def _iso_or_none(dt: datetime | None) -> str | None:
    return None if dt is None else iso(dt)


def window_json(state: WindowState) -> dict[str, Any]:
    return {"open": state.is_open, "opens_at": _iso_or_none(state.opens_at),
            "closes_at": _iso_or_none(state.closes_at)}


# ---------------------------------------------------------------------- connection


def welcome(*, node: str, protocol: int, user: dict[str, Any], school: dict[str, Any],
            window_state: WindowState, heartbeat: int, replayed: int,
            complete: bool) -> dict[str, Any]:
    return {"type": "welcome", "protocol": protocol, "node": node, "user": user,
            "school": school, "read_only": not window_state.is_open,
            "window": window_json(window_state), "heartbeat": heartbeat,
            "resume": {"replayed": replayed, "complete": complete}}


def error(code: ErrorCode, message: str, *, ref: str | None = None,
          retry_at: datetime | None = None,
          params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A refusal: the stable ``code``, a French sentence, and ``params`` (always
    present, see docs/protocol.md) for clients that word it themselves."""
    body: dict[str, Any] = {"type": "error", "code": code.value, "message": message,
                            "params": wire_params(code, params, retry_at)}
    if ref is not None:
        body["ref"] = ref
    if retry_at is not None:
        body["retry_at"] = iso(retry_at)
    return body


def reconnect(reason: str) -> dict[str, Any]:
    return {"type": "reconnect", "reason": reason}


def token_expiring(expires_at: datetime) -> dict[str, Any]:
    """The connection's token expires soon: send ``refresh`` with a fresh one."""
    return {"type": "token_expiring", "expires_at": iso(expires_at)}


def refreshed(expires_at: datetime) -> dict[str, Any]:
    """The reply to ``refresh``: the connection now lasts until ``expires_at``."""
    return {"type": "refreshed", "expires_at": iso(expires_at)}


def access(code: ErrorCode, message: str,
           params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Access was withdrawn (the connection closes next)."""
    return {"type": "access", "code": code.value, "message": message,
            "params": wire_params(code, params)}


def window(state: WindowState) -> dict[str, Any]:
    """The school's hours opened or closed."""
    return {"type": "window", **window_json(state)}


# ---------------------------------------------------------------------- replies


def ok() -> dict[str, Any]:
    return {"type": "ok"}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def ack(msg: MessageLike, *, duplicate: bool) -> dict[str, Any]:
    return {"type": "ack", "discussion": msg.discussion_id, "seq": msg.seq,
            "client_id": msg.client_id, "at": iso(msg.created_at), "duplicate": duplicate}


def held(discussion: DiscussionId | None, client_id: str, until: datetime, *,
         duplicate: bool) -> dict[str, Any]:
    """Kept for the opening of the hours (defer mode)."""
    return {"type": "held", "discussion": discussion, "client_id": client_id,
            "held_until": iso(until), "duplicate": duplicate}


def started(summary: dict[str, Any], ack_frame: dict[str, Any],
            groups: dict[str, Any] | None = None) -> dict[str, Any]:
    """``groups``: what the start's groups expanded to (:func:`group_expansion`), if any."""
    out = {"type": "started", "discussion": summary, "ack": ack_frame}
    if groups is not None:
        out["groups"] = groups
    return out


def group_expansion(expansion: Expansion) -> dict[str, Any]:
    """Who a start's groups reached and how many of their members were left out, per
    reason code (never who: that is the members' business)."""
    left_out = expansion.left_out_counts()
    return {"included": list(expansion.included), "left_out": left_out,
            "left_out_total": sum(left_out.values())}


def discussions(items: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
    return {"type": "discussions", "items": items, "more": after is not None, "next": after}


def search_results(results: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
    """A page of ``search`` results (:mod:`server.search`); ``next`` for the next page."""
    return {"type": "search", "results": results, "more": after is not None, "next": after}


def post(d: DiscussionId, status: dict[str, Any]) -> dict[str, Any]:
    """Whether the user may post in ``d`` now changed (someone joined or left)."""
    return {"type": "post", "discussion": d, "post": status}


def history(d: DiscussionId, messages: list[dict[str, Any]], more: bool,
            reads: Mapping[UserId, int],
            post_status: dict[str, Any] | None = None) -> dict[str, Any]:
    """``reads``: the other participants' read positions the reader may learn;
    ``post_status``: whether the reader may post now (the newest page only)."""
    body = {"type": "history", "discussion": d, "messages": messages, "more": more,
            "reads": dict(reads)}
    if post_status is not None:
        body["post"] = post_status
    return body


# ---------------------------------------------------------------------- discussions


def message(msg: MessageLike) -> dict[str, Any]:
    return {"type": "message", "discussion": msg.discussion_id, "seq": msg.seq,
            "sender": msg.sender, "body": msg.body, "at": iso(msg.created_at),
            "client_id": msg.client_id}


def skipped(d: DiscussionId, seq: int) -> dict[str, Any]:
    """In place of a message hidden from the reader: its seq, and nothing of it."""
    return {"type": "skipped", "discussion": d, "seq": seq}


def discussion(summary: dict[str, Any]) -> dict[str, Any]:
    """A discussion the user was added to (or its summary again)."""
    return {"type": "discussion", "discussion": summary}


def joined(d: DiscussionId, user: dict[str, Any], invited_by: str | None) -> dict[str, Any]:
    return {"type": "joined", "discussion": d, "invited_by": invited_by, "user": user}


def left(d: DiscussionId, user: UserId) -> dict[str, Any]:
    return {"type": "left", "discussion": d, "user": user}


def read(d: DiscussionId, user: UserId, seq: int) -> dict[str, Any]:
    return {"type": "read", "discussion": d, "user": user, "seq": seq}


def typing(d: DiscussionId, user: UserId) -> dict[str, Any]:
    return {"type": "typing", "discussion": d, "user": user}


def presence(user: UserId, online: bool) -> dict[str, Any]:
    return {"type": "presence", "user": user, "online": online}


def held_dropped(client_id: str, d: DiscussionId | None, code: str,
                 message_text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A held message refused at its release (the author lost the right meanwhile);
    ``params`` are already those of the wire (:func:`~server.errors.wire_params`)."""
    return {"type": "held_dropped", "client_id": client_id, "discussion": d, "code": code,
            "message": message_text, "params": dict(params)}


# ---------------------------------------------------------------------- noticeboard


def broadcast(view: dict[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast", "broadcast": view}


def broadcast_stats(bid: int, stats: dict[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast_stats", "id": bid, "stats": stats}


def broadcast_mine(bid: int, mine: dict[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast_mine", "id": bid, "mine": mine}


def broadcast_reminder(bid: int, title: str, author: dict[str, Any],
                       at: str) -> dict[str, Any]:
    return {"type": "broadcast_reminder", "id": bid, "title": title, "author": author,
            "at": at}


def broadcast_dropped(bid: int, code: str, message_text: str,
                      params: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast_dropped", "id": bid, "code": code, "message": message_text,
            "params": dict(params)}

