"""How the SQLite store writes times: ISO 8601 text in UTC, which sorts as it reads."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["dt", "opt_dt", "ts"]


def ts(value: datetime) -> str:
    """A time as stored: ISO 8601 in UTC."""
    return value.astimezone(UTC).isoformat()


def dt(text: str) -> datetime:
    """A stored time, back."""
    return datetime.fromisoformat(text)


def opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
