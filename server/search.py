"""Search in one's own discussions: the words of a query, the pages of results, and
their JSON (``search`` frames and ``GET /api/search``, docs/protocol.md §5.11 and §6.9).

The store finds (:meth:`~server.store.contract.SearchStore.search`), bounded by what
``history`` and ``list`` show the user; this module checks the query, reads and writes
the page cursor, and cuts each snippet into plain text and matched words, so that no
client ever has markup to parse or to escape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from . import frames
from .errors import ErrorCode, Refused
from .model import DiscussionId, SchoolId, UserId
from .protocol import MAX_INT, MAX_QUERY_CHARS, MAX_SEARCH, SEARCH_PAGE, text_fault
from .store import SearchHit, Store
from .store.base import MATCH_END, MATCH_START

__all__ = ["MAX_WORDS", "MIN_WORD_CHARS", "cost", "page", "read_cursor", "result_json", "words"]

MAX_WORDS = 8  # words of a query: each one narrows, more than this is not a search
MIN_WORD_CHARS = 2  # a query needs one word this long: « a » alone would match everything
SEARCH_COST = 4.0  # from the user's allowance: full-text matching reads more than a list


def cost(limit: int) -> float:
    """What a search of ``limit`` results costs from the user's allowance, through the
    WebSocket or REST alike (docs/protocol.md §5.1): 4, plus one per 25 results."""
    return SEARCH_COST + limit / 25


# Letters and digits, in any script: the words a query and the indexes are made of.
_WORD = re.compile(r"[^\W_]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CUT = re.compile(f"({MATCH_START}|{MATCH_END})")


def words(query: str) -> list[str]:
    """The words of ``query`` (letters and digits, punctuation aside), each once;
    :class:`Refused` ``bad_request`` with a sentence saying what to change."""
    if len(query) > MAX_QUERY_CHARS:
        raise Refused(ErrorCode.BAD_REQUEST,
                      f"La recherche est trop longue : {MAX_QUERY_CHARS} caractères au plus.")
    if text_fault(query) is not None:
        raise Refused(ErrorCode.BAD_REQUEST, "La recherche contient un caractère invalide.")
    found = list(dict.fromkeys(w.casefold() for w in _WORD.findall(query)))
    if not any(len(w) >= MIN_WORD_CHARS for w in found):
        raise Refused(ErrorCode.BAD_REQUEST,
                      f"La recherche est trop courte : au moins un mot de {MIN_WORD_CHARS} "
                      "lettres ou chiffres.")
    if len(found) > MAX_WORDS:
        raise Refused(ErrorCode.BAD_REQUEST,
                      f"La recherche compte trop de mots : {MAX_WORDS} au plus.")
    # A word of one letter is matched as the start of a word, so it matches nearly every
    # word of the index (of every school: the index is shared), and scanning that would
    # cost the whole node a long read for one user's query; it narrows nothing anyway
    # (« l » of « l'école »). It is left out, like a stop word.
    return [w for w in found if len(w) >= MIN_WORD_CHARS]


def cursor(hit: SearchHit) -> str:
    """The position after ``hit``, opaque to clients: ``<µs since 1970>-<id>-<seq>``."""
    return f"{(hit.at - _EPOCH) // _MICROSECOND}-{hit.discussion_id}-{hit.seq}"


def read_cursor(text: str) -> tuple[datetime, DiscussionId, int]:
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
        raise Refused(ErrorCode.BAD_REQUEST,
                      "'cursor' doit être le 'next' d'une page précédente.")
    micros, d, seq = (int(p) for p in parts)
    try:
        return _EPOCH + micros * _MICROSECOND, DiscussionId(min(d, MAX_INT)), seq
    except OverflowError:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "'cursor' doit être le 'next' d'une page précédente.") from None


def snippet_json(snippet: str) -> list[dict[str, Any]]:
    """``[{"text": …}, {"text": …, "match": true}, …]``: plain text, in order."""
    out: list[dict[str, Any]] = []
    inside = False
    for part in _CUT.split(snippet):
        if part == MATCH_START:
            inside = True
        elif part == MATCH_END:
            inside = False
        elif part:
            out.append({"text": part, "match": True} if inside else {"text": part})
    return out


def result_json(hit: SearchHit) -> dict[str, Any]:
    return {"discussion": hit.discussion_id, "subject": hit.subject, "kind": hit.kind,
            "seq": hit.seq if hit.kind == "message" else None, "at": frames.iso(hit.at),
            "snippet": snippet_json(hit.snippet)}


async def page(store: Store, school: SchoolId, user: UserId, query: str,
               after: str | None = None,
               limit: int = SEARCH_PAGE) -> tuple[list[dict[str, Any]], str | None]:
    """A page of results, newest first, and the cursor of the next one (``None`` on
    the last)."""
    found = words(query)
    before = None if after is None else read_cursor(after)
    limit = max(1, min(limit, MAX_SEARCH))
    hits = await store.search(school, user, found, before=before, limit=limit + 1)
    shown = hits[:limit]
    return [result_json(h) for h in shown], cursor(shown[-1]) if len(hits) > limit else None
