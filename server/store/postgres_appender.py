"""Group commit for PostgreSQL: the appends queued while one batch is in flight go
together in the next, as ONE statement (one round trip, one transaction, one WAL
flush), whatever the number of messages and discussions in it.

The batch statement (:data:`_BATCH`) does what the one-message statement of
:mod:`server.store.postgres_messages` does, for every item at once: it locks
each discussion's row once, in key order (two batches never wait on each other in
a circle), leaves out what is already stored (idempotency by client id), numbers
the new messages of each discussion after its ``last_seq`` in queue order (gap-free),
stores them and moves ``last_seq`` on, only for the items whose members are still
at the version they were checked against.

Failures. Every caller gets an answer:

- the database failing (connection lost, busy, full) fails the whole batch with the
  translated error: the statement is atomic, nothing of it was stored;
- an item at fault (a value the server refuses, a retry of the same message that
  another node committed meanwhile: a unique violation) fails the statement too, and
  then each item of the batch is stored alone, so that it fails alone;
- a caller cancelled while waiting leaves its item in the batch: like a lost
  acknowledgement, its retry with the same client id is answered ``duplicate``.

See ``docs/design/postgresql.md`` for the measures behind this choice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import MembersChanged, NotFound, StoreError, StoreUnavailable
from ..model import DiscussionId, SchoolId, UserId
from .appender import hidden_json, hidden_set
from .base import StoredMessage

if TYPE_CHECKING:
    from asyncpg import Record

__all__ = ["Append", "PostgresAppender"]

log = logging.getLogger("preau.store")

# At most this many messages in one statement (its arrays), the rest in the next.
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class Append:
    """One message to store (the arguments of ``append_message``)."""

    school_id: SchoolId
    discussion_id: DiscussionId
    sender: UserId
    client_id: str
    body: str
    now: datetime
    hidden_from: frozenset[UserId]
    members_version: int | None

    @property
    def key(self) -> tuple[SchoolId, DiscussionId, UserId, str]:
        return self.school_id, self.discussion_id, self.sender, self.client_id


_Result = tuple[StoredMessage, bool] | StoreError

_BATCH = """
WITH items AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::jsonb[], $8::integer[])
        WITH ORDINALITY AS i(school_id, discussion_id, sender, client_id, body, created_at,
                             hidden_from, members_version, n)
), locked AS (
    SELECT d.school_id, d.id, d.last_seq, d.members_version FROM discussions d
    WHERE (d.school_id, d.id) IN (SELECT school_id, discussion_id FROM items)
    ORDER BY d.school_id, d.id
    FOR NO KEY UPDATE
), existing AS (
    SELECT i.n, m.seq, m.body, m.created_at, m.hidden_from FROM items i
    JOIN messages m ON m.school_id = i.school_id AND m.discussion_id = i.discussion_id
        AND m.sender = i.sender AND m.client_id = i.client_id
), firsts AS (
    SELECT DISTINCT ON (i.school_id, i.discussion_id, i.sender, i.client_id) i.*
    FROM items i WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.n = i.n)
    ORDER BY i.school_id, i.discussion_id, i.sender, i.client_id, i.n
), fresh AS (
    SELECT f.*, l.last_seq + row_number() OVER (
        PARTITION BY f.school_id, f.discussion_id ORDER BY f.n) AS seq
    FROM firsts f JOIN locked l ON l.school_id = f.school_id AND l.id = f.discussion_id
    WHERE f.members_version IS NULL OR f.members_version = l.members_version
), inserted AS (
    INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, body,
                          created_at, hidden_from)
    SELECT school_id, discussion_id, seq, sender, client_id, body, created_at, hidden_from
    FROM fresh
), bumped AS (
    UPDATE discussions d SET last_seq = t.seq, last_at = t.created_at
    FROM (SELECT DISTINCT ON (school_id, discussion_id) school_id, discussion_id, seq,
                 created_at
          FROM fresh ORDER BY school_id, discussion_id, seq DESC) AS t
    WHERE d.school_id = t.school_id AND d.id = t.discussion_id
)
SELECT i.n, f.seq AS new_seq, e.seq, e.body, e.created_at, e.hidden_from,
       l.id IS NOT NULL AS found
FROM items i
LEFT JOIN fresh f ON f.n = i.n
LEFT JOIN existing e ON e.n = i.n
LEFT JOIN locked l ON l.school_id = i.school_id AND l.id = i.discussion_id
ORDER BY i.n
"""


class PostgresAppender:
    """PostgresAppender is responsible for storing queued messages in batches, one
    statement per batch, one batch at a time.

    ``write(sql, *args)`` runs one statement in its own transaction (the store's
    ``_write``: errors translated, the driver's as ``__cause__``); ``single(item)``
    stores one message alone (the one-message statement).
    """

    def __init__(self, write: Callable[..., Awaitable[list[Record]]],
                 single: Callable[[Append], Awaitable[tuple[StoredMessage, bool]]]) -> None:
        self._write = write
        self._single = single
        self._queue: list[tuple[Append, asyncio.Future[_Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, item: Append) -> tuple[StoredMessage, bool]:
        """Store ``item``; returns once the statement holding it committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()
        self._queue.append((item, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        result = await future
        if isinstance(result, StoreError):
            raise result
        return result

    async def close(self) -> None:
        """Wait for the queued appends."""
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        batch: list[tuple[Append, asyncio.Future[_Result]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                results = await self._store([item for item, _ in batch])
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                batch = []
        finally:
            self._flusher = None
            # Cancelled (the loop is closing): nothing taken or queued is left waiting. The
            # batch in flight may have been committed: its senders retry with the same
            # client id and are answered ``duplicate``.
            stranded, self._queue = batch + self._queue, []
            for _, future in stranded:
                if not future.done():
                    future.set_result(StoreUnavailable("storing messages: the store is closing"))

    async def _store(self, items: list[Append]) -> list[_Result]:
        if len(items) == 1:
            return [await self._alone(items[0])]
        try:
            rows = await self._write(
                _BATCH, [a.school_id for a in items], [a.discussion_id for a in items],
                [a.sender for a in items], [a.client_id for a in items],
                [a.body for a in items], [a.now for a in items],
                [hidden_json(a.hidden_from) for a in items],
                [a.members_version for a in items])
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                return [exc] * len(items)  # the database failed: the whole batch did
            # An item at fault (or a retry stored meanwhile elsewhere): each on its own.
            log.info("a batch of %d messages failed (%s): storing them one by one",
                     len(items), exc)
            return [await self._alone(item) for item in items]
        except Exception as exc:  # whatever it is, every caller gets an answer
            log.error("storing a batch of messages failed", exc_info=exc)
            return [StoreError(f"storing messages failed: {exc}")] * len(items)
        return _results(items, rows)

    async def _alone(self, item: Append) -> _Result:
        try:
            return await self._single(item)
        except StoreError as exc:
            return exc


def _results(items: list[Append], rows: list[Record]) -> list[_Result]:
    """Each item's answer from the batch statement's rows (one per item, in order)."""
    out: list[_Result] = []
    first: dict[tuple[Any, ...], _Result] = {}
    for item, row in zip(items, rows, strict=True):
        result: _Result
        if row["new_seq"] is not None:
            result = (StoredMessage(item.discussion_id, int(row["new_seq"]), item.sender,
                                    item.client_id, item.body, item.now, item.hidden_from),
                      True)
        elif row["seq"] is not None:
            result = (StoredMessage(item.discussion_id, int(row["seq"]), item.sender,
                                    item.client_id, row["body"], row["created_at"],
                                    hidden_set(row["hidden_from"])), False)
        elif item.key in first:
            # The same message twice in one batch (a retry while the first was queued).
            earlier = first[item.key]
            result = earlier if isinstance(earlier, StoreError) else (earlier[0], False)
        elif not row["found"]:
            result = NotFound(f"no discussion {item.discussion_id}")
        else:
            result = MembersChanged(f"the members of discussion {item.discussion_id} changed")
        first.setdefault(item.key, result)
        out.append(result)
    return out
