"""Group commit for the per-message path: many appends, one transaction, one thread hop.

Storing a message is the one write on the hot path. Done as separate awaited
statements it costs five round trips to the database thread (~200 µs of CPU
here). The :class:`Appender` instead queues appends made while a write is in
flight and stores the whole batch in one ``BEGIN IMMEDIATE … COMMIT`` run
entirely in its own thread, with its own connection: one hop, one commit, and
under load many messages per commit. Each caller still gets its own result only
after the commit, so an ack still means durable.

Sequence numbers stay gap-free: each append increments its discussion's
``last_seq`` inside the batch's transaction, in queue order.

Failures. Every caller gets an answer, whatever is raised:

- each item runs inside its own ``SAVEPOINT``: an item that fails for its own sake
  (a value the driver cannot bind, a constraint) is rolled back to its savepoint
  and fails alone, with a :class:`~server.errors.StoreError`; the others of the
  batch are still stored by the one ``COMMIT`` (cheaper than retrying the batch
  item by item, and the failed item's ``last_seq`` increment is undone with it);
- a failure of the database itself (busy, full, I/O), at ``BEGIN``, in an item or
  at ``COMMIT``, fails the whole batch with the translated error (its cause kept):
  SQLite may already have rolled the transaction back, so ``ROLLBACK`` is issued
  only if one is still open, and its own failure never hides the first;
- the flusher task resolves every future it took, and the futures still queued if
  it is cancelled: no append waits for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import MembersChanged, NotFound, StoreError, StoreUnavailable
from ..model import DiscussionId, SchoolId, UserId
from .base import StoredMessage
from .failures import WriteHealth, translate

__all__ = ["Appender"]

log = logging.getLogger("preau.store")


@dataclass(frozen=True, slots=True)
class _Append:
    school_id: SchoolId
    discussion_id: DiscussionId
    sender: UserId
    client_id: str
    body: str
    now: datetime
    hidden_from: frozenset[UserId]
    members_version: int | None  # the members the post was checked against, if told


_Result = tuple[StoredMessage, bool] | StoreError  # NotFound is a StoreError
_DOING = "storing messages"


def hidden_json(hidden: frozenset[UserId]) -> str | None:
    """The ``hidden_from`` column: ``NULL`` for nobody (the usual case), else a sorted
    JSON list of user ids."""
    return json.dumps(sorted(hidden)) if hidden else None


def hidden_set(value: str | None) -> frozenset[UserId]:
    """The ``hidden_from`` column read back."""
    return frozenset() if value is None else frozenset(UserId(u) for u in json.loads(value))


class Appender:
    """Appender is responsible for storing messages durably, in batches, off the loop."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000,
                 health: WriteHealth | None = None) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._health = health or WriteHealth()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="preau-append")
        self._conn: sqlite3.Connection | None = None  # used only in the executor's thread
        self._queue: list[tuple[_Append, asyncio.Future[_Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId,
                     client_id: str, body: str, *, now: datetime,
                     hidden_from: frozenset[UserId] = frozenset(),
                     members_version: int | None = None) -> tuple[StoredMessage, bool]:
        """Like :meth:`Store.append_message`; returns once the batch holding it committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()
        self._queue.append((_Append(school_id, discussion_id, sender, client_id, body, now,
                                    hidden_from, members_version), future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        result = await future
        if isinstance(result, StoreError):
            raise result
        return result

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[_Append, asyncio.Future[_Result]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._write, [item for item, _ in batch])
                except Exception as exc:  # whatever it is, every future gets an answer
                    error = _caused(translate(exc, _DOING), exc)
                    if not isinstance(error, StoreUnavailable):
                        log.error("storing a batch of messages failed", exc_info=exc)
                    self._health.observe(error)
                    _fail(batch, error)
                    batch = []
                    continue
                self._health.succeeded()
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                batch = []
        finally:
            self._flusher = None
            # Cancelled (the loop is closing): nothing taken or queued is left waiting. The
            # batch in flight may have been committed: its senders retry with the same
            # client_id and are answered ``duplicate``.
            stranded, self._queue = batch + self._queue, []
            _fail(stranded, StoreUnavailable(f"{_DOING}: the store is closing"))

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _write(self, batch: list[_Append]) -> list[_Result]:
        """In the appender's thread: the whole batch in one transaction, each item in its
        own savepoint. Raises only for a failure of the whole batch."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [self._item(conn, item) for item in batch]
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn, exc)
            raise
        return results

    def _item(self, conn: sqlite3.Connection, item: _Append) -> _Result:
        conn.execute("SAVEPOINT item")
        try:
            result = self._one(conn, item)
        except Exception as exc:  # judged below: this item's failure or the batch's
            error = _caused(translate(exc, _DOING), exc)
            if isinstance(error, StoreUnavailable) or not conn.in_transaction:
                raise  # the database failed, not this item: the whole batch fails
            log.warning("message %r of %s refused by the store: %s", item.client_id,
                        item.sender, error)
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            return error
        conn.execute("RELEASE item")
        return result

    @staticmethod
    def _one(conn: sqlite3.Connection, a: _Append) -> _Result:
        row = conn.execute(
            "SELECT seq, body, created_at, hidden_from FROM messages "
            "WHERE discussion_id = ? AND sender = ? AND client_id = ?",
            (a.discussion_id, a.sender, a.client_id),
        ).fetchone()
        if row is not None:
            return (StoredMessage(a.discussion_id, int(row[0]), a.sender, a.client_id, row[1],
                                  datetime.fromisoformat(row[2]), hidden_set(row[3])), False)
        at = a.now.astimezone(UTC).isoformat()
        # Stored only on the decision about the members as they are now: the write lock
        # orders this against invitations (docs/policy.md, "People who arrive later").
        seq_row = conn.execute(
            "UPDATE discussions SET last_seq = last_seq + 1, last_at = ? "
            "WHERE school_id = ? AND id = ? AND (? IS NULL OR members_version = ?) "
            "RETURNING last_seq",
            (at, a.school_id, a.discussion_id, a.members_version, a.members_version),
        ).fetchone()
        if seq_row is None:
            exists = conn.execute("SELECT 1 FROM discussions WHERE school_id = ? AND id = ?",
                                  (a.school_id, a.discussion_id)).fetchone()
            if exists is None:
                return NotFound(f"no discussion {a.discussion_id}")
            return MembersChanged(f"the members of discussion {a.discussion_id} changed")
        seq = int(seq_row[0])
        conn.execute(
            "INSERT INTO messages (school_id, discussion_id, seq, sender, client_id, body, "
            "created_at, hidden_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (a.school_id, a.discussion_id, seq, a.sender, a.client_id, a.body, at,
             hidden_json(a.hidden_from)),
        )
        return (StoredMessage(a.discussion_id, seq, a.sender, a.client_id, a.body, a.now,
                              a.hidden_from), True)

    async def close(self) -> None:
        """Wait for queued appends, then close the connection and the thread."""
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=True)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _caused(error: StoreError, cause: BaseException) -> StoreError:
    """``error`` with the driver's ``cause`` kept, as ``raise error from cause`` would:
    the error is raised later, in the coroutine that waits for the batch."""
    if error is not cause:
        error.__cause__ = cause
    return error


def _fail(batch: list[tuple[_Append, asyncio.Future[_Result]]], error: StoreError) -> None:
    for _, future in batch:
        if not future.done():
            future.set_result(error)


def _rollback(conn: sqlite3.Connection, cause: BaseException) -> None:
    """Undo what is left of a failed transaction without hiding ``cause``: after
    SQLITE_FULL or an I/O error SQLite has already rolled it back itself."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("rollback after %r failed too: %s", cause, exc)
