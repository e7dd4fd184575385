"""Host-minted tokens end to end: a server configured by PREAU_IDENTITY_FILE, a host
publishing its JWKS over HTTP, real WebSocket hellos and REST calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from server.clock import ManualClock
from server.config import Config
from server.limits import Limits
from tests.conftest import SECRET, LiveServer, serve
from tests.jwks_host import Host, hand_signed, identity_toml, public_pem, serving
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

# The server's clock a year ahead of the wall clock (PREAU_CLOCK_START does this): the
# host signs by it, and every time claim must be read against it.
AHEAD = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)


@dataclass
class Hosted:
    server: LiveServer
    host: Host


@pytest.fixture
def hosted(schools_url: str, tmp_path: Path) -> Iterator[Hosted]:
    host = Host("RS256")
    host.add_key("k1")
    with serving(host):
        path = tmp_path / "identity.toml"
        path.write_text(identity_toml(host))
        clock = ManualClock(AHEAD)
        config = Config(database_url=schools_url, jwt_secret=SECRET, identity_file=str(path))
        with serve(config, clock, Limits(tick_seconds=0.05, hello_timeout=1.0)) as url:
            yield Hosted(LiveServer(url, clock, schools_url), host)


async def refused_hello(url: str, token: str) -> tuple[dict[str, object], int | None]:
    wire = await Wire.open(url)
    await wire.send({"type": "hello", "token": token})
    error = await wire.expect("error")
    code, _ = await wire.closed()
    return error, code


async def test_a_host_token_opens_a_connection_and_calls_rest(hosted: Hosted):
    live, host = hosted.server, hosted.host
    token = host.token("t1", AHEAD)
    wire, welcome = await Wire.signed_in(live.ws_url, token)
    assert (welcome["user"]["id"], welcome["school"]["id"]) == ("t1", "hugo")
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["user"]["id"] == "t1"
        wrong = await http.get("/api/me", headers={
            "Authorization": f"Bearer {host.token('t1', AHEAD, aud='another-app')}"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "unauthenticated")
    # Préau's own tokens keep working beside the host's.
    own, _ = await Wire.signed_in(live.ws_url, live.token("e1"))
    # A host token refreshes a connection like Préau's own.
    reply = await wire.request({"type": "refresh",
                                "token": host.token("t1", AHEAD, ttl=timedelta(hours=1))})
    assert reply["type"] == "refreshed", reply
    await wire.close()
    await own.close()


async def test_refused_host_tokens_close_4501(hosted: Hosted):
    live, host = hosted.server, hosted.host
    claims = {"iss": "https://vie-scolaire.example", "aud": "preau", "sub": "t1",
              "exp": int((AHEAD + timedelta(minutes=5)).timestamp())}
    host.add_key("k9", publish=False)
    tokens = {
        "wrong aud": host.token("t1", AHEAD, aud="another-app"),
        "expired": host.token("t1", AHEAD - timedelta(hours=1)),
        "iat in the future": host.token(
            "t1", AHEAD, iat=int((AHEAD + timedelta(minutes=5)).timestamp())),
        "alg none": hand_signed({"alg": "none", "kid": "k1"}, claims, b""),
        "HS256 with the public key": hand_signed({"alg": "HS256", "kid": "k1"}, claims,
                                                 public_pem(host.keys["k1"])),
        "unknown kid": host.token("t1", AHEAD, kid="k9"),
        "unknown user": host.token("nobody", AHEAD),
    }
    for case, token in tokens.items():
        error, code = await refused_hello(live.ws_url, token)
        assert (error["code"], code) == ("unauthenticated", 4501), case


async def test_an_unreachable_key_set_asks_the_client_to_retry(hosted: Hosted):
    live, host = hosted.server, hosted.host
    host.failing = True
    error, code = await refused_hello(live.ws_url, host.token("t1", AHEAD))
    assert (error["code"], code) == ("unavailable", 4013)
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        r = await http.get("/api/me",
                           headers={"Authorization": f"Bearer {host.token('t1', AHEAD)}"})
        assert (r.status_code, r.headers.get("retry-after")) == (503, "1")
    host.failing = False
    live.clock.advance(timedelta(seconds=61))  # past the refetch interval
    await Wire.signed_in(live.ws_url, host.token("t1", live.clock()))
