"""Checking the JWTs an OpenID Connect provider signs: ID tokens (OpenID Connect Core
1.0 §3.1.3.7) and logout tokens (Back-Channel Logout 1.0 §2.6), with joserfc (the
JOSE library of the Authlib project, which Authlib's own ``authlib.jose`` now defers to).

Only asymmetric signatures are accepted, each with a key of the provider's JWKS found by
the token's ``kid``: ``alg`` ``none`` and HMAC (which would let the client secret, or a
public key used as a secret, sign) are refused before any key is looked at. The times
are read against the wall clock (the provider's), not Préau's injectable school clock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

__all__ = ["ASYMMETRIC", "BACKCHANNEL_EVENT", "TokenRefused", "verify_id_token",
           "verify_logout_token"]

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 60  # seconds of clock skew between the provider and this server
MAX_LOGOUT_AGE = 600  # a logout token issued longer ago than this is a replay


class TokenRefused(Exception):
    """A token that must not be trusted; the message says why (for the logs)."""


KeysLoader = Callable[[bool], Awaitable[KeySet]]  # (refresh) → the provider's keys


def _header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError) as exc:
        raise TokenRefused("not a JWT") from exc
    if not isinstance(header, dict) or token.count(".") != 2:
        raise TokenRefused("not a signed JWT (JWS compact)")
    return header


async def _decode(token: str, keys: KeysLoader) -> dict[str, Any]:
    """The claims of ``token`` once its signature is checked with the provider's key."""
    header = _header(token)
    alg = header.get("alg")
    if alg not in ASYMMETRIC:
        raise TokenRefused(f"signing algorithm {alg!r} refused")
    kid = header.get("kid")
    key_set = await keys(False)
    if not _has(key_set, kid):
        # A provider rolls its keys: an unknown kid means fetching them again, once.
        key_set = await keys(True)
        if not _has(key_set, kid):
            raise TokenRefused(f"unknown key id {kid!r}")
    try:
        key = key_set.get_by_kid(kid)
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        raise TokenRefused(f"bad signature or token: {exc}") from exc
    return dict(decoded.claims)


def _has(key_set: KeySet, kid: Any) -> bool:
    if kid is None:
        return len(key_set.keys) == 1
    return any(k.kid == kid for k in key_set.keys)


def _check(claims: Mapping[str, Any], now: int, **options: Any) -> None:
    try:
        jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY, **options).validate(dict(claims))
    except JoseError as exc:
        raise TokenRefused(f"claims refused: {exc}") from exc


async def verify_id_token(token: str, keys: KeysLoader, *, issuer: str, client_id: str,
                          nonce: str, now: int) -> dict[str, Any]:
    """The claims of an ID token for ``client_id``, issued by ``issuer`` for the sign-in
    that sent ``nonce``; :class:`TokenRefused` otherwise."""
    claims = await _decode(token, keys)
    _check(claims, now, iss={"essential": True, "value": issuer},
           sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
           nonce={"essential": True, "value": nonce})
    _audience(claims, client_id)
    return claims


async def verify_logout_token(token: str, keys: KeysLoader, *, issuer: str, client_id: str,
                              now: int) -> dict[str, Any]:
    """The claims of a logout token (Back-Channel Logout 1.0 §2.6): signed like an ID
    token, with ``iss``, ``aud``, a recent ``iat``, the back-channel ``events`` member,
    ``sid`` or ``sub``, and no ``nonce`` (so that an ID token cannot pass for one)."""
    claims = await _decode(token, keys)
    _check(claims, now, iss={"essential": True, "value": issuer},
           iat={"essential": True})
    _audience(claims, client_id)
    if "nonce" in claims:
        raise TokenRefused("a logout token has no nonce")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise TokenRefused("no back-channel logout event")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise TokenRefused("neither sid nor sub")
    if int(claims["iat"]) < now - MAX_LOGOUT_AGE:
        raise TokenRefused("issued too long ago")
    return claims


def _audience(claims: Mapping[str, Any], client_id: str) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise TokenRefused(f"audience {aud!r} is not {client_id!r}")
    # Several audiences: the token must have been issued to us (OIDC Core §3.1.3.7, 4–5).
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise TokenRefused(f"authorized party {claims.get('azp')!r} is not {client_id!r}")
