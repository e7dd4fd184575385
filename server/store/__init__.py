"""Durable state behind the :class:`~server.store.contract.Store` protocol (and its roles).

``open_store(url)`` picks the implementation from the database URL:
``sqlite:///path/to/file.db`` (or ``sqlite:///:memory:``) today; PostgreSQL
URLs are recognised and refused with a clear message until that backend lands.
A SQLite URL may end with ``?busy_timeout_ms=N``: how long a write waits for
another process's write lock before it fails as ``unavailable`` (10,000 by default).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from ..errors import ConfigurationError
from .base import (
    AuditEntry,
    Broadcast,
    BroadcastStats,
    Discussion,
    DiscussionSummary,
    HeldMessage,
    ImportReport,
    Receipt,
    StoredMessage,
)
from .contract import (
    BroadcastStore,
    DirectoryStore,
    DiscussionStore,
    HeldStore,
    MessageStore,
    Store,
)
from .sqlite import SqliteStore

__all__ = [
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
    "Receipt",
    "SqliteStore",
    "Store",
    "StoredMessage",
    "open_store",
    "sqlite_path",
]


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


async def open_store(url: str) -> Store:
    """Open (and migrate) the store named by ``url``."""
    path = sqlite_path(url)
    if path is not None:
        store = SqliteStore(path, **_sqlite_options(url))
        await store.open()
        return store
    if url.startswith(("postgres://", "postgresql://")):
        raise ConfigurationError(
            "PostgreSQL is not supported yet: use a sqlite:/// database URL for now"
        )
    raise ConfigurationError(
        f"unsupported database URL {url!r}: expected sqlite:///path/to/preau.db"
    )
