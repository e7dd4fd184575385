"""What asyncpg raises, in the store's own words.

Every error of the PostgreSQL driver (and of the socket beneath it) leaves
:class:`~server.store.postgres.PostgresStore` as a :class:`~server.errors.StoreError`
made by :func:`translate`, with the server's message and SQLSTATE kept:

- ``53100`` disk full -> :class:`StoreFull`;
- serialization failure ``40001``, deadlock ``40P01``, lock not available ``55P03``,
  a statement cancelled by ``lock_timeout``/``statement_timeout`` (``57014``) and a
  pool with no free connection in time -> :class:`StoreBusy` (retryable);
- the connection lost or refused (``08xxx``, an ``OSError``, asyncpg's "connection is
  closed"), the server shutting down, crashed or starting (``57P01``-``57P03``), too
  many connections (``53300``), a read-only server after a failover (``25006``) ->
  :class:`StoreUnavailable` (retryable: another try may reach the new primary);
- data errors (class ``22``: a NUL in text, a number out of range, an untranslatable
  character) and values the driver cannot encode (a lone surrogate, an integer beyond
  64 bits) -> :class:`UnstorableValue`: the request is at fault;
- anything else -> :class:`StoreError` (not retryable: a bug, a constraint).
"""

from __future__ import annotations

import asyncio

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from ..errors import StoreBusy, StoreError, StoreFull, StoreUnavailable, UnstorableValue

__all__ = ["DRIVER_ERRORS", "translate"]

# What the driver and the socket beneath it raise: caught at the store's boundary.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg_base.InternalClientError,
    OSError, TimeoutError, UnicodeEncodeError, OverflowError)

_FULL = {"53100"}
_BUSY = {"40001", "40P01", "55P03", "57014"}
_UNAVAILABLE = {"57P01", "57P02", "57P03", "53300", "25006", "58030"}


def translate(exc: BaseException, doing: str) -> StoreError:
    """The store's error for ``exc``, raised while ``doing`` (``"storing messages"``)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        text = f"{doing} failed: {exc} (SQLSTATE {state or '?'})"
        if state in _FULL:
            return StoreFull(text)
        if state in _BUSY:
            return StoreBusy(text)
        if state in _UNAVAILABLE or state.startswith("08"):
            return StoreUnavailable(text)
        if state.startswith("22"):
            return UnstorableValue(f"{doing}: a value cannot be stored: {exc}")
        return StoreError(text)
    if isinstance(exc, asyncpg_base.DataError | UnicodeEncodeError | OverflowError):
        # The driver could not encode a parameter: the value is at fault.
        return UnstorableValue(f"{doing}: a value cannot be stored: {exc}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        # Waiting for a pooled connection (or the server's answer) took too long.
        return StoreBusy(f"{doing} failed: the database did not answer in time")
    if isinstance(exc, OSError | ConnectionError | asyncpg.InterfaceError
                  | asyncpg_base.InternalClientError):
        # Refused, reset, closed under us, or the pool is closing.
        return StoreUnavailable(f"{doing} failed: {type(exc).__name__}: {exc}")
    return StoreError(f"{doing} failed: {type(exc).__name__}: {exc}")
