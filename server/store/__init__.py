"""Durable state behind the :class:`~server.store.base.Store` protocol.

``open_store(url)`` picks the implementation from the database URL:
``sqlite:///path/to/file.db`` (or ``sqlite:///:memory:``) today; PostgreSQL
URLs are recognised and refused with a clear message until that backend lands.
"""

from __future__ import annotations

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
    Store,
    StoredMessage,
)
from .sqlite import SqliteStore

__all__ = [
    "AuditEntry",
    "Broadcast",
    "BroadcastStats",
    "Discussion",
    "DiscussionSummary",
    "HeldMessage",
    "ImportReport",
    "Receipt",
    "SqliteStore",
    "Store",
    "StoredMessage",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite:///`` URL, or ``None`` for another scheme."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):] or ":memory:"
    if url == "sqlite://":
        return ":memory:"
    return None


async def open_store(url: str) -> Store:
    """Open (and migrate) the store named by ``url``."""
    path = sqlite_path(url)
    if path is not None:
        store = SqliteStore(path)
        await store.open()
        return store
    if url.startswith(("postgres://", "postgresql://")):
        raise ConfigurationError(
            "PostgreSQL is not supported yet: use a sqlite:/// database URL for now"
        )
    raise ConfigurationError(
        f"unsupported database URL {url!r}: expected sqlite:///path/to/preau.db"
    )
