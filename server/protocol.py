"""The wire format, sans I/O: bytes in, typed requests out; frames in, bytes out.

Nothing here touches a socket or the event loop. :func:`decode` turns one
WebSocket frame into a map, :func:`parse_request` turns that map into one of
the request dataclasses (or raises :class:`FrameError` with a stable code and
the request's ``ref`` so the caller can answer it), and :func:`encode` turns
an outgoing frame into text (``preau.json``) or bytes (``preau.msgpack``).
The frames themselves are documented in ``docs/protocol.md``.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import ErrorCode
from .gatekeeper.groups import Group, GroupKind
from .model import ClassId, DiscussionId, UserId

__all__ = [
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "MAX_BODY_CHARS",
    "MAX_FRAME_BYTES",
    "MAX_INT",
    "MAX_LIST",
    "PROTOCOL_VERSION",
    "SUBPROTOCOLS",
    "CloseCode",
    "Encoding",
    "FrameError",
    "Hello",
    "History",
    "Invite",
    "Leave",
    "ListDiscussions",
    "Ping",
    "Read",
    "Refresh",
    "Request",
    "Search",
    "Send",
    "Start",
    "Typing",
    "close_reason",
    "decode",
    "encode",
    "parse_hello",
    "parse_request",
    "replace_surrogates",
    "text_fault",
]

PROTOCOL_VERSION = 1
HEARTBEAT_INTERVAL = 25.0  # seconds between WebSocket pings from the server
HEARTBEAT_TIMEOUT = 20.0  # seconds without a pong before the server drops the connection
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes
MAX_FRAME_BYTES = 64 * 1024
MAX_BODY_CHARS = 8000
MAX_SUBJECT_CHARS = 200
MAX_RECIPIENTS = 50
MAX_GROUPS = 10  # groups of classes in one start, beside MAX_RECIPIENTS people
MAX_CLASS_ID_CHARS = 64
MAX_REF_CHARS = 64
MAX_CLIENT_ID_CHARS = 64
MAX_RESUME = 1000
MAX_HISTORY = 100
LIST_PAGE = 50  # discussions in a ``list`` page when the client does not say
MAX_LIST = 200
MAX_CURSOR_CHARS = 64
MAX_INT = 2**63 - 1  # ids and seqs are SQLite INTEGERs: anything larger names nothing
MAX_TOKEN_CHARS = 4096
MAX_USER_ID_CHARS = 64
MAX_QUERY_CHARS = 100  # a search's text (``search``, GET /api/search)
SEARCH_PAGE = 20  # search results in a page when the client does not say
MAX_SEARCH = 50


class Encoding(enum.Enum):
    """The two encodings, negotiated by WebSocket subprotocol."""

    JSON = "preau.json"
    MSGPACK = "preau.msgpack"


SUBPROTOCOLS: dict[str, Encoding] = {e.value: e for e in Encoding}


class CloseCode(enum.IntEnum):
    """WebSocket close codes Préau uses. 4000–4499: reconnect; 4500–4999: terminal."""

    NORMAL = 1000
    PROTOCOL_ERROR = 1002
    TOO_LARGE = 1009
    INTERNAL = 1011
    SHUTDOWN = 4000
    HELLO_TIMEOUT = 4001
    SLOW = 4008
    TRY_AGAIN = 4013  # the store or the broker failed before the welcome: retry shortly
    TOKEN_EXPIRED = 4401  # the token expired without a refresh: reconnect with a fresh one
    TOO_MANY_CONNECTIONS = 4429
    UNAUTHENTICATED = 4501
    ACCESS_REVOKED = 4503


class FrameError(Exception):
    """A frame that cannot be served: answer ``error`` with ``code`` (and ``ref``)."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.params: Mapping[str, Any] = params or {}


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry, on a character boundary."""
    data = text.encode()[:MAX_CLOSE_REASON_BYTES]
    return data.decode(errors="ignore")


# --------------------------------------------------------------------------- text

# JSON lets a client write a lone UTF-16 surrogate ("\ud800"): Python keeps it in the
# str, and it then fails wherever the text is encoded to UTF-8 (SQLite, the socket). NUL
# ends strings in C clients and tools. Neither is text anyone writes: both are refused.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_fault(value: str) -> str | None:
    """Why ``value`` cannot be stored (a lone surrogate, a NUL), or ``None`` if it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return "contient un caractère NUL" if found.group() == "\x00" else \
        "n'est pas de l'Unicode bien formé (une demi-paire UTF-16 isolée)"


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, the replacement character.

    For values stored before the boundary refused them: reading them must never fail.
    """
    return _SURROGATE.sub("\ufffd", text)


def _scrubbed(value: Any) -> Any:
    """A copy of an outgoing value with :func:`replace_surrogates` applied to every string."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, Mapping):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


# --------------------------------------------------------------------------- codec

_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_packer = msgpack.Packer(use_bin_type=True)


def encode(frame: Mapping[str, Any], encoding: Encoding) -> str | bytes:
    """One outgoing frame: ``str`` for JSON (a text frame), ``bytes`` for MessagePack.

    Never fails on text read back from the store: a lone surrogate (see
    :func:`text_fault`) goes out as U+FFFD. Frames are encoded once per node, and the
    check costs nothing for ASCII and one scan otherwise.
    """
    if encoding is Encoding.JSON:
        text = _json_encoder.encode(frame)
        # ensure_ascii=False writes a surrogate as is; it only appears inside a string
        # literal, so replacing it in the output is replacing it in the value.
        if not text.isascii() and _SURROGATE.search(text) is not None:
            text = replace_surrogates(text)
        return text
    try:
        packed: bytes = _packer.pack(frame)
    except UnicodeEncodeError:  # the packer resets its buffer on failure
        packed = _packer.pack(_scrubbed(frame))
    return packed


def decode(data: str | bytes, encoding: Encoding) -> dict[str, Any]:
    """One incoming frame as a map, or :class:`FrameError` (``bad_request``/``too_large``)."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(ErrorCode.TOO_LARGE,
                         f"Les trames sont limitées à {MAX_FRAME_BYTES} octets.",
                         params={"max_bytes": MAX_FRAME_BYTES})
    try:
        if encoding is Encoding.JSON:
            if not isinstance(data, str):
                raise FrameError(ErrorCode.BAD_REQUEST,
                                 "preau.json utilise des trames texte, celle-ci est binaire.")
            value = json.loads(data)
        else:
            if not isinstance(data, bytes):
                raise FrameError(ErrorCode.BAD_REQUEST,
                                 "preau.msgpack utilise des trames binaires, celle-ci est "
                                 "du texte.")
            value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except FrameError:
        raise
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        # RecursionError: JSON nested thousands deep (json has no depth limit of its own).
        name = "JSON" if encoding is Encoding.JSON else "MessagePack"
        raise FrameError(ErrorCode.BAD_REQUEST,
                         f"La trame n'est pas du {name} valide : {exc}") from None
    if not isinstance(value, dict):
        raise FrameError(ErrorCode.BAD_REQUEST, "Une trame doit être un objet avec un 'type'.",
                         params={"field": "type"})
    return value


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Hello:
    """``resume`` is ``None`` for a fresh client (live traffic only), else its positions."""

    token: str
    resume: tuple[tuple[DiscussionId, int], ...] | None


@dataclass(frozen=True, slots=True)
class Start:
    ref: str | None
    subject: str
    to: tuple[UserId, ...]
    body: str
    client_id: str
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    ref: str | None
    discussion: DiscussionId
    body: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Invite:
    ref: str | None
    discussion: DiscussionId
    user: UserId


@dataclass(frozen=True, slots=True)
class Leave:
    ref: str | None
    discussion: DiscussionId


@dataclass(frozen=True, slots=True)
class Read:
    ref: str | None
    discussion: DiscussionId
    seq: int


@dataclass(frozen=True, slots=True)
class Typing:
    ref: str | None
    discussion: DiscussionId


@dataclass(frozen=True, slots=True)
class ListDiscussions:
    """A page of the user's discussions, most recently active first; ``before`` is the
    ``next`` cursor of the previous page (``None``: the first page)."""

    ref: str | None
    before: str | None = None
    limit: int = LIST_PAGE


@dataclass(frozen=True, slots=True)
class History:
    ref: str | None
    discussion: DiscussionId
    before: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class Ping:
    ref: str | None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A fresh token for the same user, before the connection's one expires."""

    ref: str | None
    token: str


@dataclass(frozen=True, slots=True)
class Search:
    """A page of search results in the user's discussions; ``cursor`` is the ``next``
    of the previous page (``None``: the first page). ``q`` is checked for words by
    :func:`server.search.words`."""

    ref: str | None
    q: str
    cursor: str | None = None
    limit: int = SEARCH_PAGE


Request = (Start | Send | Invite | Leave | Read | Typing | ListDiscussions | History | Ping
           | Refresh | Search)


class _Fields:
    """Typed access to a frame's fields; every failure names the field."""

    __slots__ = ("frame", "ref")

    def __init__(self, frame: Mapping[str, Any], ref: str | None) -> None:
        self.frame = frame
        self.ref = ref

    def fail(self, message: str, name: str | None = None, **limits: int) -> FrameError:
        params: dict[str, Any] = {} if name is None else {"field": name}
        params.update(limits)
        return FrameError(ErrorCode.BAD_REQUEST, message, self.ref, params)

    def text(self, name: str, *, max_chars: int, min_chars: int = 1) -> str:
        value = self.frame.get(name)
        if not isinstance(value, str):
            raise self.fail(f"'{name}' doit être une chaîne.", name)
        if len(value) > max_chars:
            code = ErrorCode.TOO_LARGE if name == "body" else ErrorCode.BAD_REQUEST
            raise FrameError(code, f"'{name}' est limité à {max_chars} caractères.", self.ref,
                             {"field": name, "max_chars": max_chars})
        fault = text_fault(value)
        if fault is not None:
            raise self.fail(f"'{name}' {fault}.", name)
        if len(value.strip()) < min_chars:
            raise self.fail(f"'{name}' ne doit pas être vide.", name)
        return value

    def integer(self, name: str, *, low: int = 0, default: int | None = None) -> int:
        value = self.frame.get(name, default)
        # bool is an int in Python, never in the protocol.
        if (not isinstance(value, int) or isinstance(value, bool)
                or not low <= value <= MAX_INT):
            raise self.fail(f"'{name}' doit être un entier de {low} à 2^63 - 1.", name,
                            min=low, max=MAX_INT)
        return value

    def discussion(self) -> DiscussionId:
        return DiscussionId(self.integer("discussion", low=1))


def _groups(raw: object, f: _Fields) -> tuple[Group, ...]:
    """A start's ``groups``: ``[{"kind": "students"|"parents"|"team", "class": id}]``."""
    if raw is None:
        return ()
    kinds = {k.value for k in GroupKind}
    if (not isinstance(raw, list) or len(raw) > MAX_GROUPS
            or not all(isinstance(g, dict) and g.get("kind") in kinds
                       and isinstance(g.get("class"), str)
                       and 0 < len(g["class"]) <= MAX_CLASS_ID_CHARS
                       and text_fault(g["class"]) is None for g in raw)):
        raise f.fail(f"'groups' doit être une liste d'au plus {MAX_GROUPS} "
                     "{\"kind\": \"students\"|\"parents\"|\"team\", \"class\": identifiant de "
                     "classe}.", "groups", max=MAX_GROUPS)
    return tuple(dict.fromkeys(Group(GroupKind(g["kind"]), ClassId(g["class"])) for g in raw))


def _ref(frame: Mapping[str, Any]) -> str | None:
    ref = frame.get("ref")
    if ref is None:
        return None
    if not isinstance(ref, str) or len(ref) > MAX_REF_CHARS or text_fault(ref) is not None:
        # Not echoed: the answer could not carry it back.
        raise FrameError(ErrorCode.BAD_REQUEST,
                         f"'ref' doit être une chaîne d'au plus {MAX_REF_CHARS} caractères, "
                         "bien formée et sans NUL.",
                         params={"field": "ref", "max_chars": MAX_REF_CHARS})
    return ref


def parse_hello(frame: Mapping[str, Any]) -> Hello:
    """The first frame of a connection; :class:`FrameError` if it is not a valid hello."""
    if frame.get("type") != "hello":
        raise FrameError(ErrorCode.UNAUTHENTICATED, "La première trame doit être 'hello'.",
                         params={"reason": "no_hello"})
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise FrameError(ErrorCode.UNAUTHENTICATED, "'hello' doit porter un 'token'.",
                         params={"reason": "missing"})
    if len(token) > MAX_TOKEN_CHARS or text_fault(token) is not None:
        raise FrameError(ErrorCode.UNAUTHENTICATED, "Jeton invalide : ce serveur n'émet pas "
                         "de tels jetons.", params={"reason": "invalid"})
    if frame.get("resume") is None:
        return Hello(token, None)
    raw = frame["resume"]
    if not isinstance(raw, list) or len(raw) > MAX_RESUME:
        raise FrameError(ErrorCode.BAD_REQUEST,
                         f"'resume' doit être une liste d'au plus {MAX_RESUME} paires.",
                         params={"field": "resume", "max": MAX_RESUME})
    pairs = []
    for item in raw:
        if (not isinstance(item, list | tuple) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_INT
                           for x in item)):
            raise FrameError(ErrorCode.BAD_REQUEST,
                             "Les paires de 'resume' sont [discussion_id, last_seq], des "
                             "entiers de 0 à 2^63 - 1.", params={"field": "resume"})
        pairs.append((DiscussionId(item[0]), int(item[1])))
    return Hello(token, tuple(pairs))


def parse_request(frame: Mapping[str, Any]) -> Request:
    """A client request, validated; :class:`FrameError` (with the ``ref``) otherwise."""
    ref = _ref(frame)
    kind = frame.get("type")
    f = _Fields(frame, ref)
    if kind == "send":
        return Send(ref, f.discussion(), f.text("body", max_chars=MAX_BODY_CHARS),
                    f.text("client_id", max_chars=MAX_CLIENT_ID_CHARS))
    if kind == "typing":
        return Typing(ref, f.discussion())
    if kind == "read":
        return Read(ref, f.discussion(), f.integer("seq"))
    if kind == "start":
        groups = _groups(frame.get("groups"), f)
        # With groups, people picked one by one are optional.
        to = frame.get("to", [] if groups else None)
        if (not isinstance(to, list) or not (0 if groups else 1) <= len(to) <= MAX_RECIPIENTS
                or not all(isinstance(u, str) and 0 < len(u) <= MAX_USER_ID_CHARS
                           and text_fault(u) is None for u in to)):
            raise f.fail(f"'to' doit être une liste de 1 à {MAX_RECIPIENTS} identifiants "
                         "(elle peut être vide si 'groups' est donné).", "to",
                         max=MAX_RECIPIENTS)
        return Start(ref, f.text("subject", max_chars=MAX_SUBJECT_CHARS),
                     tuple(UserId(u) for u in to), f.text("body", max_chars=MAX_BODY_CHARS),
                     f.text("client_id", max_chars=MAX_CLIENT_ID_CHARS), groups)
    if kind == "invite":
        return Invite(ref, f.discussion(), UserId(f.text("user", max_chars=MAX_USER_ID_CHARS)))
    if kind == "leave":
        return Leave(ref, f.discussion())
    if kind == "list":
        cursor = None
        if frame.get("before") is not None:
            cursor = f.text("before", max_chars=MAX_CURSOR_CHARS)
        page = f.integer("limit", low=1, default=LIST_PAGE)
        if page > MAX_LIST:
            raise f.fail(f"'limit' vaut au plus {MAX_LIST}.", "limit", max=MAX_LIST)
        return ListDiscussions(ref, cursor, page)
    if kind == "history":
        before = frame.get("before")
        if before is not None:
            before = f.integer("before", low=1)
        limit = f.integer("limit", low=1, default=50)
        if limit > MAX_HISTORY:
            raise f.fail(f"'limit' vaut au plus {MAX_HISTORY}.", "limit", max=MAX_HISTORY)
        return History(ref, f.discussion(), before, limit)
    if kind == "ping":
        return Ping(ref)
    if kind == "refresh":
        token = frame.get("token")
        if (not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS
                or text_fault(token) is not None):
            raise f.fail(f"'refresh' doit porter un 'token' d'au plus {MAX_TOKEN_CHARS} "
                         "caractères.", "token", max_chars=MAX_TOKEN_CHARS)
        return Refresh(ref, token)
    if kind == "search":
        q = frame.get("q")
        if not isinstance(q, str):
            raise f.fail("'q' must be a string: the words to search for")
        cursor = None
        if frame.get("cursor") is not None:
            cursor = f.text("cursor", max_chars=MAX_CURSOR_CHARS)
        limit = f.integer("limit", low=1, default=SEARCH_PAGE)
        if limit > MAX_SEARCH:
            raise f.fail(f"'limit' is at most {MAX_SEARCH}")
        return Search(ref, q, cursor, limit)
    if kind == "hello":
        raise f.fail("Déjà authentifié : 'hello' n'est que la première trame.", "type")
    # The type is named back only when short: the error is not an echo service.
    raise f.fail(f"Type de trame inconnu : {kind[:32]!r}." if isinstance(kind, str)
                 else "Une trame doit avoir un 'type' (une chaîne).", "type")
