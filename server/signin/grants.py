"""The two grants of a sign-in, kept in the store (:class:`~server.store.SigninStore`):

- a **pending sign-in**, from the app's start to the provider's return, under the
  ``state`` Préau gave the provider: Préau's own PKCE verifier and nonce for the
  provider, and what the app asked (its redirect URI, PKCE challenge and state);
- a **one-time Préau code**, from the provider's return to the app's exchange, under the
  code's SHA-256: who signed in, and the app's redirect URI and challenge it is bound to.

Each is taken once (a replay finds nothing) and lives a few minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..model import SchoolId, UserId
from ..store import SigninStore

__all__ = [
    "CODE_TTL",
    "PENDING_TTL",
    "Grant",
    "Pending",
    "challenge_of",
    "is_challenge",
    "is_verifier",
    "issue_code",
    "put_pending",
    "school_of_code",
    "take_code",
    "take_pending",
]

PENDING_TTL = timedelta(minutes=10)  # the time to sign in at the provider
CODE_TTL = timedelta(minutes=2)  # the time for the app to exchange its code
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url of a SHA-256, no padding


def is_verifier(value: object) -> bool:
    return isinstance(value, str) and _VERIFIER.fullmatch(value) is not None


def is_challenge(value: object) -> bool:
    return isinstance(value, str) and _CHALLENGE.fullmatch(value) is not None


def challenge_of(verifier: str) -> str:
    """The S256 challenge of a PKCE verifier (RFC 7636 §4.2)."""
    return str(create_s256_code_challenge(verifier))


@dataclass(frozen=True, slots=True)
class Pending:
    provider: str  # "oidc" or "cas"
    verifier: str  # Préau's PKCE verifier for the provider (OIDC)
    nonce: str  # the ID token must carry it back (OIDC)
    app_redirect_uri: str
    app_challenge: str
    app_state: str | None


@dataclass(frozen=True, slots=True)
class Grant:
    user_id: str
    provider: str
    provider_session: str | None  # OIDC sid, or the CAS ticket: for the provider's logout
    redirect_uri: str
    challenge: str


async def put_pending(store: SigninStore, school: SchoolId, pending: Pending, *,
                      now: datetime) -> str:
    """Keep ``pending``; the state that names it."""
    while True:
        state = secrets.token_urlsafe(32)
        if await store.put_signin_grant("pending", state, school, json.dumps(asdict(pending)),
                                        expires_at=now + PENDING_TTL, now=now):
            return state


async def take_pending(store: SigninStore, school: SchoolId, state: str, *,
                       now: datetime) -> Pending | None:
    payload = await store.take_signin_grant("pending", state, school, now=now)
    return None if payload is None else Pending(**json.loads(payload))


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


async def issue_code(store: SigninStore, school: SchoolId, grant: Grant, *,
                     now: datetime) -> str:
    """A one-time code for ``grant``. It names its school (the store keeps grants per
    school) and 256 random bits; the store keeps only its hash."""
    prefix = base64.urlsafe_b64encode(school.encode("utf-8")).decode("ascii").rstrip("=")
    while True:
        code = f"{prefix}.{secrets.token_urlsafe(32)}"
        if await store.put_signin_grant("code", _hash(code), school, json.dumps(asdict(grant)),
                                        expires_at=now + CODE_TTL, now=now):
            return code


def school_of_code(code: str) -> SchoolId | None:
    prefix = code.split(".", 1)[0]
    try:
        return SchoolId(base64.urlsafe_b64decode(prefix + "=" * (-len(prefix) % 4))
                        .decode("utf-8"))
    except (binascii.Error, ValueError):
        return None


async def take_code(store: SigninStore, code: str, *, verifier: str, redirect_uri: str,
                    now: datetime) -> tuple[SchoolId, UserId, Grant] | None:
    """Use up ``code``: its school, user and grant if it is live and bound to this
    ``redirect_uri`` and this PKCE ``verifier``; ``None`` otherwise. A wrong verifier or
    redirect URI uses the code up too (RFC 6749 §10.5: whoever tries a stolen code gets
    one try, and the legitimate app none: it signs in again)."""
    school = school_of_code(code)
    if school is None or len(code) > 400:
        return None
    payload = await store.take_signin_grant("code", _hash(code), school, now=now)
    if payload is None:
        return None
    grant = Grant(**json.loads(payload))
    if not hmac.compare_digest(grant.redirect_uri, redirect_uri):
        return None
    if not hmac.compare_digest(challenge_of(verifier), grant.challenge):
        return None
    return school, UserId(grant.user_id), grant
