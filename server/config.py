"""The server's configuration: one frozen object read from the environment.

Every setting has an environment variable (listed in README.md) and most have a
``preau serve`` flag that overrides it. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from . import events
from .errors import ConfigurationError
from .limits import Limits

__all__ = ["DEFAULT_DATABASE_URL", "MIN_SECRET_LENGTH", "Config"]

DEFAULT_DATABASE_URL = "sqlite:///var/preau.db"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Config:
    """Deployment settings (not the schools' settings, which live in the database).

    ``jwt_secret`` signs tokens; outside demo mode the server refuses to start
    without one of at least :data:`MIN_SECRET_LENGTH` characters. In demo mode
    a random secret is generated once and kept in the database, so that
    ``preau token`` and ``preau serve`` agree without configuration.
    ``redis_url`` unset means the in-memory broker (one process).
    """

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    jwt_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    demo: bool = False
    token_ttl: int = 12 * 3600
    rate_per_second: float = 20.0
    connections_per_user: int = 10
    max_connections: int = 10_000
    handshake_timeout: float = 5.0
    outbox_bytes: int = 1024 * 1024
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    clock_start: datetime | None = None
    client_dir: str | None = None
    # How each establishment signs its users in (server/identity_file.py): a TOML file.
    identity_file: str | None = None
    # The version of the events written to other nodes (server/events.py): the previous
    # one while nodes of the previous release remain (docs/operating.md, rolling upgrade).
    events_version: int = events.CURRENT

    def limits(self) -> Limits:
        """The hub's limits from this configuration."""
        return Limits(outbox_bytes=self.outbox_bytes, rate_per_second=self.rate_per_second,
                      rate_burst=max(1, int(self.rate_per_second * 2)),
                      connections_per_user=self.connections_per_user)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``PREAU_*`` variables (and ``REDIS_URL``) from ``environ`` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("PREAU_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("PREAU_REDIS_URL") or env.get("REDIS_URL") or None,
            jwt_secret=env.get("PREAU_JWT_SECRET") or None,
            host=env.get("PREAU_HOST") or "127.0.0.1",
            port=_int(env, "PREAU_PORT", 8000, 0, 65535),
            demo=_bool(env, "PREAU_DEMO"),
            token_ttl=_int(env, "PREAU_TOKEN_TTL", 12 * 3600, 60, 90 * 24 * 3600),
            rate_per_second=float(_int(env, "PREAU_RATE_LIMIT", 20, 1, 100_000)),
            connections_per_user=_int(env, "PREAU_USER_CONNECTIONS", 10, 1, 1000),
            max_connections=_int(env, "PREAU_MAX_CONNECTIONS", 10_000, 10, 1_000_000),
            handshake_timeout=float(_int(env, "PREAU_HANDSHAKE_TIMEOUT", 5, 1, 300)),
            outbox_bytes=_int(env, "PREAU_OUTBOX_BYTES", 1024 * 1024, 16 * 1024, 1 << 30),
            node_id=env.get("PREAU_NODE_ID") or uuid.uuid4().hex[:12],
            clock_start=_datetime(env, "PREAU_CLOCK_START"),
            client_dir=env.get("PREAU_CLIENT_DIR") or None,
            identity_file=env.get("PREAU_IDENTITY_FILE") or None,
            events_version=_int(env, "PREAU_EVENTS_VERSION", events.CURRENT, events.OLDEST,
                                events.CURRENT),
        )

    def check(self) -> None:
        """Raise :class:`ConfigurationError` if this configuration cannot serve."""
        if self.jwt_secret is None and not self.demo:
            raise ConfigurationError(
                "PREAU_JWT_SECRET is not set: set it to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`), or run with --demo"
            )
        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"PREAU_JWT_SECRET is too short: use at least {MIN_SECRET_LENGTH} characters"
            )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _datetime(env: Mapping[str, str], name: str) -> datetime | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name} must be an ISO 8601 time such as "
                                 f"2026-11-24T09:00:00Z, not {raw!r}") from None
    if value.tzinfo is None:
        raise ConfigurationError(f"{name} needs a time zone (end it with Z for UTC)")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name} must be 1 or 0, not {raw!r}")
