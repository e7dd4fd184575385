"""Tokens minted by a host application, checked against its key set served over real
HTTP on 127.0.0.1 (tests/jwks_host.py); the identity file that configures them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from server.errors import ConfigurationError, ErrorCode, Refused
from server.host_tokens import HostTokenConfig, host_token_configs
from server.jwks import JwksVerifier, build_verifier
from server.model import SchoolId, UserId
from server.tokens import SecretVerifier, issue_token
from tests.conftest import SECRET
from tests.jwks_host import (
    AUDIENCE,
    ISSUER,
    Host,
    hand_signed,
    identity_toml,
    new_key,
    public_jwk,
    public_pem,
    serving,
)

pytestmark = pytest.mark.anyio

# A year ahead of the wall clock, as PREAU_CLOCK_START may set it: every time claim must
# be read against this clock, never the machine's.
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)


@pytest.fixture(scope="module")
def rs_host() -> Iterator[Host]:
    host = Host("RS256")
    host.add_key("k1")
    with serving(host):
        yield host


def config(host: Host, **overrides: object) -> HostTokenConfig:
    fields: dict[str, object] = {
        "school": SchoolId("hugo"), "algorithm": host.algorithm, "issuer": ISSUER,
        "audience": AUDIENCE, "jwks_url": host.url, "jwks_refetch": timedelta(seconds=30)}
    fields.update(overrides)
    return HostTokenConfig(**fields)  # type: ignore[arg-type]


async def refused(verifier: JwksVerifier | SecretVerifier, token: str,
                  now: datetime = NOW) -> Refused:
    with pytest.raises(Refused) as caught:
        await verifier.verify(token, now)
    return caught.value


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_host_token_is_accepted_by_the_servers_clock(algorithm: str):
    host = Host(algorithm)
    host.add_key("k1")
    with serving(host):
        verifier = JwksVerifier(config(host))
        token = host.token("t1", NOW, sid="the-hosts-own-session")
        # Issued a year ahead of the wall clock (NOW): the wall clock is never asked.
        identity = await verifier.verify(token, NOW)
    assert (identity.school_id, identity.user_id) == ("hugo", "t1")
    assert identity.expires_at == NOW + timedelta(minutes=10)
    assert identity.session_id is None  # a host's sid means nothing to Préau


async def test_the_user_claim_is_configurable(rs_host: Host):
    verifier = JwksVerifier(config(rs_host, user_claim="uid"))
    identity = await verifier.verify(rs_host.token("opaque", NOW, uid="e1"), NOW)
    assert identity.user_id == "e1"
    error = await refused(verifier, rs_host.token("e1", NOW))  # no uid claim
    assert "'uid'" in error.message


async def test_claims_are_checked(rs_host: Host):
    verifier = JwksVerifier(config(rs_host))
    cases = {
        "aud": rs_host.token("t1", NOW, aud="another-app"),
        "no aud": rs_host.token("t1", NOW, aud=None),
        "iss": rs_host.token("t1", NOW, iss="https://elsewhere.example"),
        "expired": rs_host.token("t1", NOW - timedelta(hours=1)),
        "nbf": rs_host.token("t1", NOW, nbf=int((NOW + timedelta(minutes=5)).timestamp())),
        "iat": rs_host.token("t1", NOW, iat=int((NOW + timedelta(minutes=5)).timestamp())),
        "another school": rs_host.token("t1", NOW, sch="zola"),
    }
    for case, token in cases.items():
        error = await refused(verifier, token)
        assert error.code is ErrorCode.UNAUTHENTICATED, case
    # Within the leeway, a host whose clock runs a little ahead is still believed.
    ahead = int((NOW + timedelta(seconds=30)).timestamp())
    assert (await verifier.verify(rs_host.token("t1", NOW, iat=ahead, nbf=ahead), NOW)).user_id


async def test_the_algorithm_comes_from_the_configuration(rs_host: Host):
    verifier = JwksVerifier(config(rs_host))
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "t1",
              "exp": int((NOW + timedelta(minutes=5)).timestamp())}
    unsigned = hand_signed({"alg": "none", "typ": "JWT", "kid": "k1"}, claims, b"")
    assert "'none'" in (await refused(verifier, unsigned)).message
    # The classic confusion: HS256 keyed with the host's *public* key, which anyone has.
    confused = hand_signed({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims,
                           public_pem(rs_host.keys["k1"]))
    assert "'HS256'" in (await refused(verifier, confused)).message
    es = Host("ES256")
    es.add_key("k1")
    other = jwt.encode(claims, es.keys["k1"], algorithm="ES256", headers={"kid": "k1"})
    assert "attend RS256" in (await refused(verifier, other)).message


async def test_an_unknown_kid_refetches_once_then_waits():
    host = Host("RS256")
    host.add_key("k1")
    with serving(host):
        verifier = JwksVerifier(config(host, jwks_refetch=timedelta(seconds=30)))
        await verifier.verify(host.token("t1", NOW), NOW)
        assert host.fetches == 1
        host.add_key("k2", publish=False)  # the host signs with a key not published yet
        soon = NOW + timedelta(seconds=5)
        await refused(verifier, host.token("t1", soon, kid="k2"), soon)
        assert host.fetches == 1  # fetched 5 s ago: not again so soon
        first = NOW + timedelta(seconds=31)
        error = await refused(verifier, host.token("t1", first, kid="k2"), first)
        assert "clé inconnue 'k2'" in error.message
        assert host.fetches == 2  # refetched once for the unknown kid
        for i in range(20):  # a flood of made-up kids costs the host nothing more
            host.add_key(f"x{i}", publish=False)
            at = first + timedelta(seconds=i)
            await refused(verifier, host.token("t1", at, kid=f"x{i}"), at)
        assert host.fetches == 2
        host.published.append("k2")  # the host publishes its new key
        later = first + timedelta(seconds=31)
        identity = await verifier.verify(host.token("t1", later, kid="k2"), later)
        assert identity.user_id == "t1"
        assert host.fetches == 3
        # Rotation done: the old key is withdrawn, and is refused once the cache ages out.
        host.published.remove("k1")
        old = host.token("t1", later, kid="k1")
        assert (await verifier.verify(old, later)).user_id == "t1"  # still cached
        aged = later + timedelta(hours=1, seconds=1)
        await refused(verifier, host.token("t1", aged, kid="k1"), aged)
        assert host.fetches == 4


async def test_an_unreachable_key_set_is_unavailable_not_unauthenticated():
    host = Host("RS256")
    host.add_key("k1")
    with serving(host):
        host.failing = True
        verifier = JwksVerifier(config(host))
        error = await refused(verifier, host.token("t1", NOW))
        assert error.code is ErrorCode.UNAVAILABLE
        assert host.url in error.message
        await refused(verifier, host.token("t1", NOW), NOW + timedelta(seconds=5))
        assert host.fetches == 1  # not asked again at every hello
        host.failing = False
        later = NOW + timedelta(seconds=31)
        assert (await verifier.verify(host.token("t1", later), later)).user_id == "t1"


async def test_what_is_not_a_key_set_is_not_used():
    host = Host("RS256")
    key = host.add_key("k1")
    with serving(host):
        verifier = JwksVerifier(config(host))
        host.body = b"<html>maintenance</html>"
        assert (await refused(verifier, host.token("t1", NOW))).code is ErrorCode.UNAVAILABLE
        # Keys of another type or use, and broken ones, are skipped; the good one is used.
        es = public_jwk(new_key("ES256"), "k1", "ES256")
        enc = {**public_jwk(key, "k1", "RS256"), "use": "enc"}
        broken = {**public_jwk(key, "k1", "RS256"), "n": "!!"}
        good = public_jwk(key, "k1", "RS256")
        host.body = json.dumps({"keys": [es, enc, broken, 3, good]}).encode()
        later = NOW + timedelta(seconds=31)
        assert (await verifier.verify(host.token("t1", later), later)).user_id == "t1"
        host.body = json.dumps({"keys": [es, enc]}).encode()
        aged = later + timedelta(hours=2)
        error = await refused(verifier, host.token("t1", aged), aged)
        assert (error.code, "clé inconnue 'k1'" in error.message) == (
            ErrorCode.UNAUTHENTICATED, True)


async def test_a_token_goes_to_its_issuers_verifier(rs_host: Host, tmp_path: Path):
    path = tmp_path / "identity.toml"
    path.write_text(identity_toml(rs_host) + identity_toml(rs_host, "zola").replace(
        f'audience = "{AUDIENCE}"', 'audience = "preau-zola"')
        + "[schools.hugo.oidc]\nclient_id = 'left to the sign-in module'\n")
    verifier = build_verifier(SECRET, path)
    hugo = await verifier.verify(rs_host.token("t1", NOW), NOW)
    zola = await verifier.verify(rs_host.token("t1", NOW, aud="preau-zola"), NOW)
    assert (hugo.school_id, zola.school_id) == ("hugo", "zola")
    own = issue_token(SECRET, SchoolId("zola"), UserId("t2"), ttl=timedelta(minutes=5),
                      now=NOW, session_id="s-1")
    mine = await verifier.verify(own, NOW)  # Préau's own tokens still work beside them
    assert (mine.school_id, mine.user_id, mine.session_id) == ("zola", "t2", "s-1")
    with pytest.raises(Refused, match="audience"):
        await verifier.verify(rs_host.token("t1", NOW, aud="nobody"), NOW)


async def test_a_host_may_use_a_shared_secret(tmp_path: Path):
    path = tmp_path / "identity.toml"
    secret = "s" * 40
    path.write_text(f'[schools.hugo.tokens]\nalgorithm = "HS256"\nissuer = "{ISSUER}"\n'
                    f'secret = "{secret}"\n')
    verifier = build_verifier(SECRET, path)
    claims = {"iss": ISSUER, "sub": "t1", "iat": int(NOW.timestamp()),
              "exp": int((NOW + timedelta(minutes=5)).timestamp())}
    identity = await verifier.verify(jwt.encode(claims, secret, algorithm="HS256"), NOW)
    assert (identity.school_id, identity.user_id) == ("hugo", "t1")
    with pytest.raises(Refused):  # signed with Préau's secret, claiming the host's issuer
        await verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"), NOW)


class TestIdentityFile:
    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "identity.toml"
        path.write_text(text)
        return path

    def test_a_full_section(self, tmp_path: Path):
        host = Host("ES256")
        host.url = "https://vie-scolaire.example/jwks.json"
        path = self.write(tmp_path, identity_toml(host, user_claim="uid",
                                                  jwks_refetch_seconds=10)
                          + "[schools.zola.cas]\nserver = 'not ours'\n[sessions]\nx = 1\n")
        [(school, parsed)] = host_token_configs(path).items()
        assert (school, parsed.algorithm, parsed.user_claim) == ("hugo", "ES256", "uid")
        assert parsed.jwks_refetch == timedelta(seconds=10)
        assert host_token_configs(None) == {}

    @pytest.mark.parametrize(("text", "said"), [
        ('[schools.hugo.tokens]\nalgorithm = "RS256"\nissuer = "i"\naudience = "a"\n'
         'jwks_url = "https://h/j"\njwks_ur = "typo"\n', "unknown key 'jwks_ur'"),
        ('[schools.hugo.tokens]\nalgorithm = "none"\nissuer = "i"\n', "'algorithm'"),
        ('[schools.hugo.tokens]\nalgorithm = "RS256"\nissuer = "i"\naudience = "a"\n',
         "'jwks_url' is required"),
        ('[schools.hugo.tokens]\nalgorithm = "RS256"\nissuer = "i"\naudience = "a"\n'
         'jwks_url = "file:///etc/passwd"\n', "https://"),
        ('[schools.hugo.tokens]\nalgorithm = "HS256"\nissuer = "i"\nsecret = "short"\n',
         "too short"),
        ('[schools.hugo.tokens]\nalgorithm = "HS256"\nissuer = "i"\n'
         f'secret = "{"s" * 40}"\njwks_url = "https://h/j"\n', "'jwks_url' is for RS256"),
        ('[schools.hugo.tokens]\nalgorithm = "HS256"\nissuer = "i"\n'
         f'secret = "{"s" * 40}"\n[schools.zola.tokens]\nalgorithm = "HS256"\n'
         f'issuer = "i"\nsecret = "{"t" * 40}"\n', "same issuer and audience"),
        ("[schools.hugo\n", "not valid TOML"),
        ("schools = 3\n", "'schools' must be a table"),
    ])
    def test_mistakes_are_refused_naming_file_school_and_key(self, tmp_path: Path,
                                                              text: str, said: str):
        path = self.write(tmp_path, text)
        with pytest.raises(ConfigurationError) as caught:
            host_token_configs(path)
        assert said in str(caught.value)
        assert str(path) in str(caught.value)
        if "unknown key" in said:
            assert "[schools.hugo.tokens]" in str(caught.value)

    def test_a_missing_file(self, tmp_path: Path):
        with pytest.raises(ConfigurationError, match="cannot read"):
            host_token_configs(tmp_path / "nowhere.toml")
