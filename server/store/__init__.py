"""Durable state behind the :class:`~server.store.contract.Store` protocol (and its roles).

``open_store(url)`` picks the implementation from the database URL:
``sqlite:///path/to/file.db`` (or ``sqlite:///:memory:``), or
``postgresql://user@host:port/dbname`` (``postgres://`` too).

A SQLite URL may end with ``?busy_timeout_ms=N``: how long a write waits for
another process's write lock before it fails as ``unavailable`` (10,000 by default).

A PostgreSQL URL may carry the pool's options, ``?pool_min=1&pool_max=10&acquire_timeout=5``
(connections kept open, at most, and the seconds an operation waits for a free one
before failing as ``unavailable``), beside libpq's usual connection options
(``sslmode``, ``connect_timeout``, ``target_session_attrs``…, see
:data:`POSTGRES_CONNECTION_OPTIONS`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError
from .base import (
    AlreadyStarted,
    AuditEntry,
    Broadcast,
    BroadcastStats,
    Discussion,
    DiscussionSummary,
    HeldMessage,
    ImportReport,
    Receipt,
    Rotation,
    RotationOutcome,
    SearchHit,
    SignInSession,
    StoredMessage,
)
from .contract import (
    BroadcastStore,
    DirectoryStore,
    DiscussionStore,
    HeldStore,
    MessageStore,
    SearchStore,
    SessionStore,
    SigninStore,
    Store,
)
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = [
    "AlreadyStarted",
    "AuditEntry",
    "Broadcast",
    "BroadcastStats",
    "BroadcastStore",
    "DirectoryStore",
    "Discussion",
    "DiscussionStore",
    "DiscussionSummary",
    "HeldMessage",
    "HeldStore",
    "ImportReport",
    "MessageStore",
    "PostgresStore",
    "Receipt",
    "Rotation",
    "RotationOutcome",
    "SearchHit",
    "SearchStore",
    "SessionStore",
    "SignInSession",
    "SigninStore",
    "SqliteStore",
    "Store",
    "StoredMessage",
    "displayed_url",
    "open_store",
    "postgres_options",
    "sqlite_path",
]


def displayed_url(url: str) -> str:
    """``url`` as logs and messages may show it: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite:///`` URL (without its options), or ``None`` for
    another scheme."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):].partition("?")[0] or ":memory:"
    if url.partition("?")[0] == "sqlite://":
        return ":memory:"
    return None


def _sqlite_options(url: str) -> dict[str, int]:
    """``?busy_timeout_ms=N``, the one option of a SQLite URL."""
    options: dict[str, int] = {}
    for name, values in parse_qs(url.partition("?")[2], keep_blank_values=True).items():
        value = values[-1]
        if name != "busy_timeout_ms" or not value.isdigit() or len(value) > 9:
            raise ConfigurationError(
                f"unsupported option {name}={value!r} in the database URL: the only option "
                "is busy_timeout_ms=N (milliseconds)")
        options[name] = int(value)
    return options


# libpq's connection options asyncpg understands, passed through with the URL.
POSTGRES_CONNECTION_OPTIONS = frozenset({
    "host", "port", "user", "password", "dbname", "database", "passfile", "service",
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "sslnegotiation",
    "gsslib", "krbsrvname", "target_session_attrs", "connect_timeout", "application_name",
})
# Préau's own options for the pool: name -> (type, lowest accepted value).
_POOL_OPTIONS: dict[str, tuple[type[int] | type[float], float]] = {
    "pool_min": (int, 0), "pool_max": (int, 1), "acquire_timeout": (float, 0.001),
}


def postgres_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split a PostgreSQL URL into the URL for the driver (libpq's options kept) and the
    pool's options for :class:`PostgresStore`; :class:`ConfigurationError` for an
    option of neither kind, or a value out of range."""
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    pool: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _POOL_OPTIONS:
            kind, lowest = _POOL_OPTIONS[name]
            try:
                number = kind(value)
            except ValueError:
                number = None
            if number is None or not lowest <= number <= 1_000_000:
                raise ConfigurationError(
                    f"invalid {name}={value!r} in the database URL: expected "
                    f"{'a whole number' if kind is int else 'a number of seconds'} "
                    f"of at least {lowest:g}")
            pool[name] = number
        elif name in POSTGRES_CONNECTION_OPTIONS:
            kept.append((name, value))
        else:
            raise ConfigurationError(
                f"unsupported option {name}={value!r} in the database URL: Préau's options "
                "are pool_min=N, pool_max=N and acquire_timeout=SECONDS, beside libpq's "
                f"connection options ({', '.join(sorted(POSTGRES_CONNECTION_OPTIONS))})")
    if "pool_min" in pool and "pool_max" not in pool:
        pool["pool_max"] = max(10, pool["pool_min"])
    if pool.get("pool_min", 1) > pool.get("pool_max", 10):
        raise ConfigurationError(
            f"pool_min={pool['pool_min']} is more than pool_max={pool['pool_max']} "
            "in the database URL")
    return urlunsplit(parts._replace(query=urlencode(kept))), pool


async def open_store(url: str) -> Store:
    """Open (and migrate) the store named by ``url``."""
    path = sqlite_path(url)
    if path is not None:
        store = SqliteStore(path, **_sqlite_options(url))
        await store.open()
        return store
    if url.startswith(("postgres://", "postgresql://")):
        dsn, options = postgres_options(url)
        postgres = PostgresStore(dsn, **options)
        await postgres.open()
        return postgres
    raise ConfigurationError(
        f"unsupported database URL {url!r}: expected sqlite:///path/to/preau.db "
        "or postgresql://user@host:port/dbname"
    )
