"""Tokens minted by a host application: each establishment's ``[schools.<id>.tokens]``.

An application that embeds Préau (a school-life suite) signs its users' tokens itself.
Per establishment, the identity file (``server/identity_file.py``) says how::

    [schools.hugo.tokens]
    algorithm = "RS256"                 # RS256 | ES256 | HS256, never read from the token
    issuer = "https://vie-scolaire.example"     # the tokens' iss, which also picks the school
    audience = "preau"                  # their aud (required for RS256 and ES256)
    jwks_url = "https://vie-scolaire.example/.well-known/jwks.json"   # RS256, ES256
    # secret = "…"                      # HS256 instead of jwks_url (32 characters or more)
    user_claim = "sub"                  # the claim holding the directory user id
    jwks_refetch_seconds = 60           # at most one fetch per this many seconds for an unknown kid
    jwks_max_age_seconds = 3600         # keys are fetched again after this long

This module parses and checks that section (pure); ``server/jwks.py`` verifies tokens
with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import MIN_SECRET_LENGTH
from .errors import ConfigurationError
from .identity_file import check_keys, school_sections
from .model import SchoolId

__all__ = ["ALGORITHMS", "SECTION", "HostTokenConfig", "host_token_configs"]

SECTION = "tokens"
ALGORITHMS = ("RS256", "ES256", "HS256")
KEYS = ("algorithm", "issuer", "audience", "jwks_url", "secret", "user_claim",
        "jwks_refetch_seconds", "jwks_max_age_seconds")


@dataclass(frozen=True, slots=True)
class HostTokenConfig:
    """How one establishment's host-minted tokens are checked."""

    school: SchoolId
    algorithm: str
    issuer: str
    audience: str | None = None
    jwks_url: str | None = None
    secret: str | None = None
    user_claim: str = "sub"
    jwks_refetch: timedelta = timedelta(seconds=60)
    jwks_max_age: timedelta = timedelta(hours=1)


def host_token_configs(path: str | Path | None) -> dict[SchoolId, HostTokenConfig]:
    """Every school's ``[schools.<id>.tokens]`` of the file at ``path`` (none if ``None``).

    :class:`ConfigurationError`, naming the file, the school and the key, for anything
    wrong; two schools whose tokens could not be told apart (same issuer, same
    audience) are refused too.
    """
    if path is None:
        return {}
    out: dict[SchoolId, HostTokenConfig] = {}
    seen: dict[tuple[str, str | None], SchoolId] = {}
    for school, sections in school_sections(path).items():
        table = sections.get(SECTION)
        if table is None:
            continue
        config = _parse(path, school, table)
        pair = (config.issuer, config.audience)
        if pair in seen:
            raise ConfigurationError(
                f"PREAU_IDENTITY_FILE {path}: [schools.{school}.tokens]: schools "
                f"{seen[pair]!r} and {school!r} have the same issuer and audience: give each "
                "its own audience so that a token names one school")
        seen[pair] = config.school
        out[config.school] = config
    return out


def _parse(path: str | Path, school: str, table: Any) -> HostTokenConfig:
    where = f"PREAU_IDENTITY_FILE {path}: [schools.{school}.tokens]"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: expected a table")
    check_keys(path, school, SECTION, table, KEYS)

    def text(key: str, *, required: bool) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise ConfigurationError(f"{where}: {key!r} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{where}: {key!r} must be a non-empty string")
        return value

    def seconds(key: str, default: int) -> timedelta:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 86_400:
            raise ConfigurationError(f"{where}: {key!r} must be a whole number of seconds "
                                     "from 1 to 86400")
        return timedelta(seconds=value)

    algorithm = text("algorithm", required=True)
    if algorithm not in ALGORITHMS:
        raise ConfigurationError(f"{where}: 'algorithm' must be one of "
                                 f"{', '.join(ALGORITHMS)}, not {algorithm!r}")
    symmetric = algorithm == "HS256"
    issuer = text("issuer", required=True)
    audience = text("audience", required=not symmetric)
    jwks_url = text("jwks_url", required=not symmetric)
    secret = text("secret", required=symmetric)
    if symmetric and jwks_url is not None:
        raise ConfigurationError(f"{where}: 'jwks_url' is for RS256 and ES256; HS256 uses "
                                 "'secret'")
    if not symmetric and secret is not None:
        raise ConfigurationError(f"{where}: 'secret' is for HS256; {algorithm} uses "
                                 "'jwks_url'")
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(f"{where}: 'secret' is too short: use at least "
                                 f"{MIN_SECRET_LENGTH} characters")
    if jwks_url is not None:
        parts = urlsplit(jwks_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"{where}: 'jwks_url' must be an https:// (or http://) "
                                     f"URL, not {jwks_url!r}")
    assert issuer is not None
    assert algorithm is not None
    return HostTokenConfig(
        school=SchoolId(school), algorithm=algorithm, issuer=issuer, audience=audience,
        jwks_url=jwks_url, secret=secret,
        user_claim=text("user_claim", required=False) or "sub",
        jwks_refetch=seconds("jwks_refetch_seconds", 60),
        jwks_max_age=seconds("jwks_max_age_seconds", 3600))
