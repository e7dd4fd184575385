"""What the SQLite driver raises, in the store's own words; and how recent writes fared.

Every ``sqlite3`` error (and the few Python errors the driver raises while binding a
value) leaves the store as a :class:`~server.errors.StoreError` made by
:func:`translate`, with the driver's message kept: callers switch on the class
(``retryable`` or not), operators read the cause.

:class:`WriteHealth` remembers the outcome of the most recent write of this process,
for ``/readyz``: a node whose writes fail must leave the load balancer even though
its reads still work.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ..errors import StoreBusy, StoreError, StoreFull, StoreUnavailable, UnstorableValue

__all__ = ["WRITE_FAILURE_WINDOW", "WriteHealth", "translate"]

# Primary result codes (the low byte of extended ones), from sqlite3.h.
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_FULL = 13  # SQLITE_FULL
# SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN,
# SQLITE_PROTOCOL, SQLITE_NOTADB: the database, not the request, is at fault.
_UNAVAILABLE = {7, 8, 10, 11, 14, 15, 26}

# How long a failed write keeps /readyz at 503 when no write has succeeded since.
WRITE_FAILURE_WINDOW = 30.0


def translate(exc: BaseException, doing: str) -> StoreError:
    """The store's error for ``exc``, raised while ``doing`` (``"storing messages"``)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, UnicodeEncodeError | OverflowError):
        # Binding a lone surrogate, or an integer beyond 64 bits: the value is at fault.
        return UnstorableValue(f"{doing}: a value cannot be stored: {exc}")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        text = f"{doing} failed: {exc} ({name})"
        primary = None if code is None else code & 0xFF
        if primary in _BUSY:
            return StoreBusy(text)
        if primary == _FULL:
            return StoreFull(text)
        if primary in _UNAVAILABLE:
            return StoreUnavailable(text)
        return StoreError(text)
    return StoreError(f"{doing} failed: {type(exc).__name__}: {exc}")


class WriteHealth:
    """The outcome of this process's most recent write, for ``/readyz``.

    Only failures of the database itself count (:class:`StoreUnavailable`: busy,
    full, I/O): a request refused for its own content says nothing about the store.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failed_at: float | None = None
        self._failure = ""

    def succeeded(self) -> None:
        self._failed_at = None

    def observe(self, error: BaseException) -> None:
        if isinstance(error, StoreUnavailable):
            self._failed_at = self._clock()
            self._failure = str(error)

    def failure(self, window: float = WRITE_FAILURE_WINDOW) -> str | None:
        """Why writes fail, if the most recent one failed less than ``window`` s ago."""
        if self._failed_at is None:
            return None
        age = self._clock() - self._failed_at
        if age >= window:
            return None
        return f"the last write failed {age:.0f} s ago: {self._failure}"
