"""Search for :class:`~server.store.postgres.PostgresStore` (see
:class:`~server.store.contract.SearchStore`), with the behaviour of
:class:`~server.store.sqlite.SqliteStore`: PostgreSQL's full-text search in the
``preau_search`` configuration (French, accents folded; migration ``0007_search.sql``),
read through the same rules as ``history`` and ``list``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..model import DiscussionId, SchoolId, UserId
from .base import MATCH_END, MATCH_START, SearchHit

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = ["PostgresSearch"]

# ts_headline's options: the snippet of a message, and a subject or a name in full.
_SHORT = (f'StartSel="{MATCH_START}", StopSel="{MATCH_END}", '
          "MaxWords=16, MinWords=6, ShortWord=2")
_WHOLE = f'StartSel="{MATCH_START}", StopSel="{MATCH_END}", HighlightAll=true'

# $1 school, $2 user, $3 tsquery text, $4-$6 the cursor (at, discussion, seq) or NULL,
# $7 limit, $8 and $9 the headline options. The user's discussions and how far they may
# read each: ``history``'s bound (visible_seq) and, once they left, when (``list``
# shows the members as they were then). The headline is made for the page only.
_SEARCH = """
WITH q AS (
    SELECT to_tsquery('preau_search'::regconfig, $3) AS q
), mine AS (
    SELECT p.discussion_id AS id, COALESCE(p.left_seq, d.last_seq) AS upto,
           p.left_at AS gone, d.subject, d.last_at
    FROM participants p
    JOIN discussions d ON d.school_id = p.school_id AND d.id = p.discussion_id
    WHERE p.school_id = $1 AND p.user_id = $2
), said AS (
    SELECT mine.id, mine.subject, 'message' AS kind, m.seq, m.created_at AS at,
           m.body AS text
    FROM messages m JOIN mine ON mine.id = m.discussion_id
    WHERE m.school_id = $1 AND m.seq <= mine.upto
      AND to_tsvector('preau_search'::regconfig, m.body) @@ (SELECT q FROM q)
      AND (m.hidden_from IS NULL OR NOT m.hidden_from ? $2)
), named AS (
    SELECT mine.id, mine.subject, 'subject' AS kind, mine.last_at AS at,
           mine.subject AS text, 1 AS rank
    FROM mine
    WHERE to_tsvector('preau_search'::regconfig, mine.subject) @@ (SELECT q FROM q)
    UNION ALL
    SELECT mine.id, mine.subject, 'participant', mine.last_at,
           u.first_name || ' ' || u.last_name, 2
    FROM mine
    JOIN participants o ON o.school_id = $1 AND o.discussion_id = mine.id
    JOIN users u ON u.school_id = $1 AND u.id = o.user_id
    WHERE o.user_id <> $2 AND u.active AND (mine.gone IS NULL OR o.joined_at <= mine.gone)
      AND to_tsvector('preau_search'::regconfig, u.first_name || ' ' || u.last_name)
          @@ (SELECT q FROM q)
), hits AS (
    SELECT id, subject, kind, seq, at, text FROM said
    UNION ALL
    -- One hit per discussion: its subject if that matched, else one participant.
    (SELECT DISTINCT ON (id) id, subject, kind, 0, at, text FROM named ORDER BY id, rank, text)
), page AS (
    SELECT * FROM hits
    WHERE $4::timestamptz IS NULL OR (at, id, seq) < ($4, $5, $6)
    ORDER BY at DESC, id DESC, seq DESC
    LIMIT $7
)
SELECT id, subject, kind, seq, at, text,
       ts_headline('preau_search'::regconfig, text, (SELECT q FROM q),
                   CASE WHEN kind = 'message' THEN $8 ELSE $9 END) AS snippet
FROM page
ORDER BY at DESC, id DESC, seq DESC
"""


def _cut(text: str, headline: str) -> str:
    """The headline with ``…`` where it cut the text, as SQLite's ``snippet`` writes it."""
    plain = headline.replace(MATCH_START, "").replace(MATCH_END, "").strip()
    if not plain or plain == text.strip():
        return headline
    start = text.find(plain)
    before = "…" if start != 0 else ""
    after = "…" if start < 0 or start + len(plain) < len(text.rstrip()) else ""
    return f"{before}{headline.strip()}{after}"


def tsquery(words: Sequence[str]) -> str:
    """A ``to_tsquery`` text: every word, as the start of a word. The words are letters
    and digits (the caller's), quoted all the same so that no query syntax slips in."""
    return " & ".join("'" + w.replace("'", "''").replace("\\", "") + "':*" for w in words)


class PostgresSearch:
    """Search for PostgresStore."""

    if TYPE_CHECKING:
        async def _fetch(self, sql: str, *args: Any) -> list[Record]: ...

    async def search(
        self,
        school_id: SchoolId,
        user_id: UserId,
        words: Sequence[str],
        *,
        before: tuple[datetime, DiscussionId, int] | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        if not words:
            return []
        at, did, seq = (None, 0, 0) if before is None else before
        rows = await self._fetch(_SEARCH, school_id, user_id, tsquery(words), at, did, seq,
                                 limit, _SHORT, _WHOLE)
        return [SearchHit(DiscussionId(r["id"]), r["subject"], r["kind"], int(r["seq"]),
                          r["at"], _cut(r["text"], r["snippet"])) for r in rows]
