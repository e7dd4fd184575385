"""The identity file (``PREAU_IDENTITY_FILE``): how each establishment signs its users in.

A TOML file with one table per school::

    [schools.hugo.tokens]      # tokens minted by a host application (server/host_tokens.py)
    [schools.hugo.oidc]        # OpenID Connect sign-in (another module reads it)
    [schools.hugo.cas]         # CAS sign-in (another module reads it)

This module only reads the file and hands each school's table to the modules that
own its sections; each of them checks its own section (:func:`check_keys`) and leaves
the others alone, so that a section added for a new kind of sign-in needs no change
here. Top-level tables other than ``schools`` are left to whoever owns them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["check_keys", "read_identity_file", "school_sections"]


def read_identity_file(path: str | Path) -> dict[str, Any]:
    """The whole file, parsed; :class:`ConfigurationError` if unreadable or not TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigurationError(f"PREAU_IDENTITY_FILE {path}: cannot read it: "
                                 f"{exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"PREAU_IDENTITY_FILE {path}: not valid TOML: {exc}") \
            from None


def school_sections(path: str | Path) -> dict[str, dict[str, Any]]:
    """Each school's table (``[schools.<id>]``): school id → its sections, as parsed."""
    schools = read_identity_file(path).get("schools", {})
    if not isinstance(schools, dict):
        raise ConfigurationError(f"PREAU_IDENTITY_FILE {path}: 'schools' must be a table "
                                 "of schools ([schools.<school id>.<section>])")
    for school, table in schools.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"PREAU_IDENTITY_FILE {path}: school {school!r}: "
                                     "expected a table of sections ([schools.<id>.<section>])")
    return schools


def check_keys(path: str | Path, school: str, section: str, table: Mapping[str, Any],
               allowed: Iterable[str]) -> None:
    """Refuse a key of ``[schools.<school>.<section>]`` that is not in ``allowed``: a
    misspelt setting must stop the server, not be silently ignored."""
    known = set(allowed)
    for key in table:
        if key not in known:
            raise ConfigurationError(
                f"PREAU_IDENTITY_FILE {path}: [schools.{school}.{section}]: unknown key "
                f"{key!r} (known: {', '.join(sorted(known))})")
