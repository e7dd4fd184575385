"""Configuration from the environment, and token signing and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from server.config import Config
from server.errors import ConfigurationError, ErrorCode, Refused
from server.model import SchoolId, UserId
from server.tokens import ISSUED_AT_LEEWAY, issue_token, read_token

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SECRET = "k" * 40


class TestConfig:
    def test_defaults(self):
        c = Config.from_env({})
        assert (c.database_url, c.redis_url, c.host, c.port, c.demo) == (
            "sqlite:///var/preau.db", None, "127.0.0.1", 8000, False)

    def test_environment(self):
        c = Config.from_env({"PREAU_DATABASE_URL": "sqlite:///x.db", "REDIS_URL": "redis://r",
                             "PREAU_JWT_SECRET": SECRET, "PREAU_PORT": "9000",
                             "PREAU_DEMO": "yes"})
        assert (c.database_url, c.redis_url, c.jwt_secret, c.port, c.demo) == (
            "sqlite:///x.db", "redis://r", SECRET, 9000, True)
        assert Config.from_env({"PREAU_REDIS_URL": "redis://a",
                                "REDIS_URL": "redis://b"}).redis_url == "redis://a"

    def test_flood_limits(self):
        c = Config.from_env({"PREAU_USER_CONNECTIONS": "3", "PREAU_HANDSHAKE_TIMEOUT": "7",
                             "PREAU_MAX_CONNECTIONS": "500", "PREAU_RATE_LIMIT": "5"})
        assert (c.connections_per_user, c.handshake_timeout, c.max_connections) == (3, 7.0, 500)
        limits = c.limits()
        assert (limits.connections_per_user, limits.rate_per_second, limits.rate_burst) == (
            3, 5.0, 10)
        with pytest.raises(ConfigurationError, match="PREAU_USER_CONNECTIONS"):
            Config.from_env({"PREAU_USER_CONNECTIONS": "0"})

    def test_events_version(self):
        """The newest by default; the previous one during a rolling upgrade."""
        assert Config.from_env({}).events_version == 2
        assert Config.from_env({"PREAU_EVENTS_VERSION": "1"}).events_version == 1

    @pytest.mark.parametrize(("env", "words"), [
        ({"PREAU_PORT": "x"}, "PREAU_PORT must be an integer"),
        ({"PREAU_PORT": "70000"}, "between 0 and 65535"),
        ({"PREAU_DEMO": "perhaps"}, "PREAU_DEMO"),
        ({"PREAU_EVENTS_VERSION": "3"}, "PREAU_EVENTS_VERSION must be between 1 and 2"),
    ])
    def test_bad_values_are_named(self, env: dict[str, str], words: str):
        with pytest.raises(ConfigurationError, match=words):
            Config.from_env(env)

    def test_production_needs_a_strong_secret(self):
        with pytest.raises(ConfigurationError, match="PREAU_JWT_SECRET is not set"):
            Config().check()
        with pytest.raises(ConfigurationError, match="too short"):
            Config(jwt_secret="abc").check()
        Config(demo=True).check()
        Config(jwt_secret=SECRET).check()


class TestTokens:
    def test_round_trip(self):
        token = issue_token(SECRET, SchoolId("hugo"), UserId("t1"), ttl=timedelta(hours=1),
                            now=NOW)
        ident = read_token(SECRET, token, now=NOW + timedelta(minutes=59))
        assert (ident.school_id, ident.user_id, ident.expires_at) == (
            "hugo", "t1", NOW + timedelta(hours=1))

    @pytest.mark.parametrize("case", ["expired", "wrong_secret", "garbage", "none_alg"])
    def test_refusals(self, case: str):
        token = issue_token(SECRET, SchoolId("hugo"), UserId("t1"), ttl=timedelta(hours=1),
                            now=NOW)
        now = NOW
        secret = SECRET
        if case == "expired":
            now = NOW + timedelta(hours=1)
        elif case == "wrong_secret":
            secret = "z" * 40
        elif case == "garbage":
            token = "a.b.c"
        else:
            _header, payload, _ = token.split(".")
            token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
        with pytest.raises(Refused) as info:
            read_token(secret, token, now=now)
        assert info.value.code is ErrorCode.UNAUTHENTICATED

    @pytest.mark.parametrize("claim", ["iat", "nbf"])
    def test_time_claims_follow_the_given_clock(self, claim: str):
        """iat and nbf are judged by ``now`` (the server's clock), like exp, with a leeway
        for an issuer whose clock runs slightly ahead."""
        far = NOW + timedelta(days=365 * 3)  # nowhere near the wall clock
        exp = int((far + timedelta(hours=2)).timestamp())

        def signed(at: datetime) -> str:
            return jwt.encode({"sch": "hugo", "sub": "t1", "exp": exp,
                               claim: int(at.timestamp())}, SECRET, algorithm="HS256")

        assert read_token(SECRET, signed(far), now=far).user_id == "t1"
        assert read_token(SECRET, signed(far + ISSUED_AT_LEEWAY), now=far).user_id == "t1"
        with pytest.raises(Refused, match="pas encore valide") as info:
            read_token(SECRET, signed(far + ISSUED_AT_LEEWAY + timedelta(seconds=1)), now=far)
        assert info.value.code is ErrorCode.UNAUTHENTICATED
        malformed = jwt.encode({"sch": "hugo", "sub": "t1", "exp": exp, claim: "soon"},
                               SECRET, algorithm="HS256")
        with pytest.raises(Refused, match=f"{claim} mal formé"):
            read_token(SECRET, malformed, now=far)
