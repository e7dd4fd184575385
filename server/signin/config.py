"""The sign-in sections of ``PREAU_IDENTITY_FILE`` (TOML): each school's OpenID Connect
provider (``[schools.<id>.oidc]``), CAS server (``[schools.<id>.cas]``), and the apps'
redirect URIs (``[signin]``). Other sections (``[schools.<id>.tokens]``…) belong to
other readers of the same file and are left alone here; an unknown key in these
sections is refused, naming the file, the school and the key, so that a typo never
turns a check off silently."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..identity_file import read_identity_file
from ..model import SchoolId, UserId

__all__ = ["CasProvider", "OidcProvider", "SigninConfig", "load_signin_config",
           "parse_signin_config"]

OIDC_KEYS = {"issuer", "client_id", "client_secret", "user_claim", "school_claim", "users",
             "scopes", "label", "frontchannel_logout"}
CAS_KEYS = {"server_url", "version", "user_attribute", "school_attribute", "label"}
SIGNIN_KEYS = {"public_url", "app_redirect_uris"}


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """A school's OpenID Connect provider. ``user_claim`` names the ID token's claim that
    holds the directory user id; ``users``, when given, maps that claim's values to
    directory ids instead (e.g. the provider's opaque ``sub`` to ``"t-martin"``)."""

    school_id: SchoolId
    issuer: str
    client_id: str
    client_secret: str
    user_claim: str = "sub"
    users: Mapping[str, UserId] | None = None
    scopes: tuple[str, ...] = ("openid", "profile")
    label: str = "ENT"
    # A provider shared by several schools (one ENT for a whole region) names the user's
    # school in a claim: then it must be this school's id, since ids repeat across schools.
    school_claim: str | None = None
    # Front-Channel Logout 1.0 names the session by an unsigned sid (LemonLDAP::NG 2.16:
    # the user's login), so it is off unless the school turns it on; even then it ends
    # only what the browser that signed in proves it opened (server/signin/logout.py).
    frontchannel_logout: bool = False

    kind = "oidc"


@dataclass(frozen=True, slots=True)
class CasProvider:
    """A school's CAS server (protocol 2.0 or 3.0). ``user_attribute`` names the
    attribute that holds the directory user id (3.0 only); without it, the CAS user
    name is the directory id."""

    school_id: SchoolId
    server_url: str
    version: int = 3
    user_attribute: str | None = None
    label: str = "ENT"
    school_attribute: str | None = None  # as OidcProvider.school_claim (CAS 3.0)

    kind = "cas"


Provider = OidcProvider | CasProvider


@dataclass(frozen=True, slots=True)
class SigninConfig:
    """Every school's providers, and where apps may be sent back to.

    ``public_url``: the server's address as browsers see it (behind a proxy), from which
    the provider callback URLs are made; ``None`` takes the request's own.
    ``app_redirect_uris``: the exact redirect URIs of the mobile apps (custom schemes,
    RFC 8252), on top of the server's own page."""

    providers: Mapping[tuple[SchoolId, str], Provider] = field(default_factory=dict)
    public_url: str | None = None
    app_redirect_uris: frozenset[str] = frozenset()

    def provider(self, school_id: SchoolId, kind: str) -> Provider | None:
        return self.providers.get((school_id, kind))


def load_signin_config(path: str | None) -> SigninConfig:
    """The sign-in configuration in the file at ``path`` (none: no provider)."""
    if path is None:
        return SigninConfig()
    return parse_signin_config(read_identity_file(path), path)


def parse_signin_config(doc: Mapping[str, Any], path: str) -> SigninConfig:
    """The sign-in sections of an already parsed identity file (``path`` for messages)."""
    signin = _table(doc.get("signin", {}), path, "[signin]")
    _no_unknown(signin, SIGNIN_KEYS, path, "[signin]")
    public_url = signin.get("public_url")
    if public_url is not None:
        public_url = _url(public_url, path, "[signin] public_url").rstrip("/")
    redirects = signin.get("app_redirect_uris", [])
    if not isinstance(redirects, list) or not all(isinstance(r, str) for r in redirects):
        raise ConfigurationError(f"{path}: [signin] app_redirect_uris must be a list of "
                                 "strings")
    for uri in redirects:
        scheme = urlsplit(uri).scheme
        if not scheme or scheme in ("http", "https", "javascript", "data", "file"):
            raise ConfigurationError(
                f"{path}: [signin] app_redirect_uris: {uri!r} is not an app's custom-scheme "
                "URI (such as 'fr.preau.app:/signin'); the server's own page is always "
                "allowed")
    providers: dict[tuple[SchoolId, str], Provider] = {}
    schools = _table(doc.get("schools", {}), path, "[schools]")
    for school, sections in schools.items():
        sections = _table(sections, path, f"[schools.{school}]")
        sid = SchoolId(str(school))
        if "oidc" in sections:
            providers[(sid, "oidc")] = _oidc(sid, sections["oidc"], path)
        if "cas" in sections:
            providers[(sid, "cas")] = _cas(sid, sections["cas"], path)
    return SigninConfig(providers, public_url, frozenset(redirects))


def _oidc(school: SchoolId, raw: Any, path: str) -> OidcProvider:
    where = f"[schools.{school}.oidc]"
    table = _table(raw, path, where)
    _no_unknown(table, OIDC_KEYS, path, where, school)
    users = table.get("users")
    if users is not None:
        users = _table(users, path, f"[schools.{school}.oidc.users]")
        if not all(isinstance(v, str) and v for v in users.values()):
            raise ConfigurationError(f"{path}: {where} users maps provider ids to "
                                     "directory user ids (strings)")
        users = {str(k): UserId(v) for k, v in users.items()}
    scopes = table.get("scopes", ["openid", "profile"])
    if (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
            or "openid" not in scopes):
        raise ConfigurationError(f"{path}: {where} scopes must be a list of strings "
                                 "with 'openid'")
    return OidcProvider(
        school_id=school,
        issuer=_url(_required(table, "issuer", path, where), path, f"{where} issuer"),
        client_id=_required(table, "client_id", path, where),
        client_secret=_required(table, "client_secret", path, where),
        user_claim=_string(table, "user_claim", "sub", path, where),
        users=users,
        scopes=tuple(scopes),
        label=_string(table, "label", "ENT", path, where),
        school_claim=_optional(table, "school_claim", path, where),
        frontchannel_logout=_boolean(table, "frontchannel_logout", False, path, where),
    )


def _cas(school: SchoolId, raw: Any, path: str) -> CasProvider:
    where = f"[schools.{school}.cas]"
    table = _table(raw, path, where)
    _no_unknown(table, CAS_KEYS, path, where, school)
    version = table.get("version", 3)
    if version not in (2, 3) or isinstance(version, bool):
        raise ConfigurationError(f"{path}: {where} version must be 2 or 3, not {version!r}")
    attribute = table.get("user_attribute")
    if attribute is not None and (not isinstance(attribute, str) or not attribute):
        raise ConfigurationError(f"{path}: {where} user_attribute must be a string")
    if attribute is not None and version == 2:
        raise ConfigurationError(f"{path}: {where} user_attribute needs CAS version 3 "
                                 "(CAS 2.0 releases no attributes)")
    return CasProvider(
        school_id=school,
        server_url=_url(_required(table, "server_url", path, where), path,
                        f"{where} server_url").rstrip("/"),
        version=int(version),
        user_attribute=attribute,
        label=_string(table, "label", "ENT", path, where),
        school_attribute=_optional(table, "school_attribute", path, where),
    )


def _optional(table: Mapping[str, Any], key: str, path: str, where: str) -> str | None:
    if key not in table:
        return None
    return _string(table, key, "", path, where)


def _boolean(table: Mapping[str, Any], key: str, default: bool, path: str,
             where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{path}: {where} {key} must be true or false, "
                                 f"not {value!r}")
    return value


def _table(raw: Any, path: str, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: {where} must be a table")
    return raw


def _no_unknown(table: Mapping[str, Any], known: set[str], path: str, where: str,
                school: SchoolId | None = None) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        of = f" of school {school!r}" if school is not None else ""
        raise ConfigurationError(
            f"{path}: unknown key {unknown[0]!r} in {where}{of}; the keys are "
            f"{', '.join(sorted(known))}")


def _required(table: Mapping[str, Any], key: str, path: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{path}: {where} needs {key!r} (a non-empty string)")
    return value


def _string(table: Mapping[str, Any], key: str, default: str, path: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{path}: {where} {key} must be a non-empty string")
    return value


def _url(value: Any, path: str, where: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{path}: {where} must be an http(s) URL, not {value!r}")
    return str(value)
