"""The checks of the provider's ID tokens and logout tokens (server/signin/idtoken.py),
with keys made here: each forged or stale token is refused, and the provider's keys are
fetched again, once, for an unknown kid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from server.signin.idtoken import (
    BACKCHANNEL_EVENT,
    TokenRefused,
    verify_id_token,
    verify_logout_token,
)

pytestmark = pytest.mark.anyio

ISSUER = "https://ent.example.fr"
CLIENT = "preau"
NONCE = "n-0S6_WzA2Mj"
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
OTHER = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)  # same kid


class Provider:
    """The provider's JWKS endpoint, as the verifier sees it: counts the fetches."""

    def __init__(self, *keys: Any) -> None:
        self.published = [k.as_dict(private=False) for k in keys]
        self.fetches = 0

    async def __call__(self, refresh: bool) -> KeySet:
        self.fetches += 1
        return KeySet.import_key_set({"keys": self.published})


def claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": CLIENT, "sub": "claire.martin", "iat": now,
            "exp": now + 300, "nonce": NONCE, "preau_uid": "t1"}
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = RSA, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key)


def unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{b64(header)}.{b64(payload)}."


async def check(token: str, provider: Provider | None = None) -> dict[str, Any]:
    return await verify_id_token(token, provider or Provider(RSA, EC), issuer=ISSUER,
                                 client_id=CLIENT, nonce=NONCE, now=int(time.time()))


async def test_a_good_id_token_passes_rs256_and_es256():
    assert (await check(sign(claims())))["preau_uid"] == "t1"
    assert (await check(sign(claims(), EC, "ES256"))) ["sub"] == "claire.martin"


@pytest.mark.parametrize(("override", "why"), [
    ({"aud": "another-app"}, "audience"),
    ({"aud": ["preau", "another-app"]}, "authorized party"),  # several, and no azp
    ({"iss": "https://evil.example"}, "claims"),
    ({"exp": int(time.time()) - 3600}, "claims"),
    ({"nonce": "another-sign-in"}, "claims"),
    ({"nonce": None}, "claims"),
    ({"iat": None}, "claims"),
])
async def test_a_wrong_claim_is_refused(override: dict[str, Any], why: str):
    with pytest.raises(TokenRefused, match=why):
        await check(sign(claims(**override)))


async def test_alg_none_is_refused():
    with pytest.raises(TokenRefused, match="'none'"):
        await check(unsigned(claims(), {"alg": "none", "kid": "rsa-1"}))


async def test_hs256_signed_with_the_public_key_is_refused():
    # The classic confusion: the RSA public key used as an HMAC secret.
    # (joserfc will not even make such a key: the token is signed by hand.)
    head = unsigned(claims(), {"alg": "HS256", "kid": "rsa-1"})[:-1]
    mac = hmac.new(RSA.as_pem(private=False), head.encode(), hashlib.sha256).digest()
    token = head + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    with pytest.raises(TokenRefused, match="'HS256'"):
        await check(token)


async def test_another_key_with_the_same_kid_is_refused():
    with pytest.raises(TokenRefused, match="signature"):
        await check(sign(claims(), OTHER))


async def test_an_unknown_kid_fetches_the_keys_again_once():
    provider = Provider(RSA)
    new = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}, private=True)
    with pytest.raises(TokenRefused, match="unknown key id 'rsa-2'"):
        await check(sign(claims(), new), provider)
    assert provider.fetches == 2  # the cached set, then one refresh
    # The provider rolled its keys: the refresh finds the new one.
    provider.published.append(new.as_dict(private=False))
    assert (await check(sign(claims(), new), provider))["sub"] == "claire.martin"


def logout_claims(**override: Any) -> dict[str, Any]:
    base = claims(nonce=None, exp=None, sid="session-42",
                  events={BACKCHANNEL_EVENT: {}}, jti="j1")
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


async def check_logout(token: str) -> dict[str, Any]:
    return await verify_logout_token(token, Provider(RSA), issuer=ISSUER, client_id=CLIENT,
                                     now=int(time.time()))


async def test_a_good_logout_token_passes():
    assert (await check_logout(sign(logout_claims())))["sid"] == "session-42"


@pytest.mark.parametrize(("override", "why"), [
    ({"nonce": "x"}, "nonce"),  # an ID token cannot pass for a logout token
    ({"events": None}, "event"),
    ({"events": {"other": {}}}, "event"),
    ({"sid": None, "sub": None}, "neither"),
    ({"aud": "another-app"}, "audience"),
    ({"iss": "https://evil.example"}, "claims"),
    ({"iat": int(time.time()) - 3600}, "too long ago"),
])
async def test_a_wrong_logout_token_is_refused(override: dict[str, Any], why: str):
    with pytest.raises(TokenRefused, match=why):
        await check_logout(sign(logout_claims(**override)))
