"""Signing in through a school's identity provider, against a real LemonLDAP::NG
(tests/identity_provider.py): OpenID Connect with PKCE, CAS 3.0, the one-time Préau code
and its exchange, every refusal (never a token), and the provider's logout cutting the
live connection."""

from __future__ import annotations

import asyncio
import html
import re
import secrets
import time
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.store import open_store
from tests.conftest import SCHOOL_DAY, SECRET, _import_schools, free_port, serve
from tests.identity_provider import Account
from tests.schools import school_doc
from tests.signin_fixture import (
    APP_URI,
    PASSWORDS,
    SigninServer,
    exchange,
    follow_to,
    identity_file,
    pkce,
    sign_in,
    signin_server_fixture,  # noqa: F401 — the fixture
    submit_login,
)
from tests.test_store_failures import write_lock_held
from tests.wire import Wire

pytestmark = pytest.mark.slow


_clients: list[httpx.Client] = []


def browser_like() -> httpx.Client:
    client = httpx.Client(timeout=20)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _clients:
        _clients.pop().close()


def me(server: SigninServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"},
                     timeout=10)


def test_the_providers_are_listed(signin_server: SigninServer):
    answer = httpx.get(f"{signin_server.url}/api/signin/providers", timeout=10).json()
    assert [(p["school"], p["kind"], p["start"]) for p in answer["providers"]] == [
        ("hugo", "cas", "/signin/hugo/cas/start"), ("hugo", "oidc", "/signin/hugo/oidc/start")]


def test_a_teacher_signs_in_with_openid_connect(signin_server: SigninServer):
    returned = sign_in(signin_server, "claire.martin")
    assert returned.params["state"] == "app-state-1"
    assert "error" not in returned.params
    answer = exchange(signin_server, returned)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["school"], body["user"], body["token_type"]) == ("hugo", "t1", "Bearer")
    assert body["refresh_token"]
    assert me(signin_server, body["access_token"]).json()["user"]["id"] == "t1"


def test_a_mobile_app_gets_its_code_on_its_custom_scheme(signin_server: SigninServer):
    returned = sign_in(signin_server, "marc.petit", redirect_uri=APP_URI)
    assert returned.location.startswith(APP_URI + "?")
    answer = exchange(signin_server, returned)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "p1"


def test_a_code_is_used_once(signin_server: SigninServer):
    returned = sign_in(signin_server, "claire.martin")
    assert exchange(signin_server, returned).status_code == 200
    again = exchange(signin_server, returned)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_grant"
    assert "access_token" not in again.text


@pytest.mark.parametrize("wrong", ["code_verifier", "redirect_uri"])
def test_a_code_needs_its_verifier_and_redirect_uri(signin_server: SigninServer, wrong: str):
    returned = sign_in(signin_server, "claire.martin")
    other = pkce()[0] if wrong == "code_verifier" else APP_URI
    refused = exchange(signin_server, returned, **{wrong: other})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_grant"
    # The try used the code up: the right values no longer work either.
    assert exchange(signin_server, returned).status_code == 400


def test_a_tampered_or_replayed_state_gets_no_code(signin_server: SigninServer):
    client = browser_like()
    _verifier, challenge = pkce()
    start = client.get(f"{signin_server.url}/signin/hugo/oidc/start",
                       params={"redirect_uri": signin_server.own_page,
                               "code_challenge": challenge, "code_challenge_method": "S256",
                               "state": "s"})
    page = follow_to(client, start, f"{signin_server.url}/signin/hugo/oidc/callback")
    answer = submit(client, page, "claire.martin")
    back = follow_to(client, answer, f"{signin_server.url}/signin/hugo/oidc/callback")
    callback_url = urljoin(str(back.url), back.headers["location"])
    tampered = re.sub(r"state=([^&]+)", lambda m: "state=" + m.group(1)[::-1], callback_url)
    refused = client.get(tampered)
    assert refused.status_code == 400
    assert "Connexion impossible" in refused.text
    assert "location" not in refused.headers
    # The real state still works once…
    first = client.get(callback_url)
    assert first.status_code == 303
    assert "code=" in first.headers["location"]
    # …and never twice (a replayed redirect from the provider, code and state).
    replayed = client.get(callback_url)
    assert replayed.status_code == 400
    assert "location" not in replayed.headers


def test_a_replayed_provider_code_is_refused_by_the_provider(signin_server: SigninServer):
    client = browser_like()
    _verifier, challenge = pkce()
    params = {"redirect_uri": signin_server.own_page, "code_challenge": challenge,
              "code_challenge_method": "S256", "state": "s"}
    start = client.get(f"{signin_server.url}/signin/hugo/oidc/start", params=params)
    page = follow_to(client, start, f"{signin_server.url}/signin/hugo/oidc/callback")
    back = follow_to(client, submit(client, page, "claire.martin"),
                     f"{signin_server.url}/signin/hugo/oidc/callback")
    callback_url = urljoin(str(back.url), back.headers["location"])
    assert "code=" in client.get(callback_url).headers["location"]
    provider_code = re.search(r"[?&]code=([^&]+)", callback_url)
    assert provider_code is not None
    # A new sign-in of the same browser, presented with the used provider code.
    start = client.get(f"{signin_server.url}/signin/hugo/oidc/start", params=params)
    state = re.search(r"[?&]state=([^&]+)", start.headers["location"])
    assert state is not None
    replay = client.get(f"{signin_server.url}/signin/hugo/oidc/callback",
                        params={"code": provider_code.group(1), "state": state.group(1)},
                        )
    assert replay.status_code == 303
    assert "error=provider_error" in replay.headers["location"]
    assert "code=" not in replay.headers["location"]


@pytest.mark.parametrize("login", ["inconnu", "sans.preau"])
def test_an_account_the_directory_lacks_gets_no_code(signin_server: SigninServer, login: str):
    returned = sign_in(signin_server, login)
    assert returned.params["error"] == "unknown_account"
    assert "code" not in returned.params
    assert "utilisateur actif" in returned.params["error_description"]


def test_an_account_of_another_school_gets_no_code(signin_server: SigninServer):
    # "t1" is also a teacher of moulin: the provider says which school the account is of.
    signin_server.provider.add_account(Account("moulin.t1", "moulin-pw", {
        "preau_uid": "t1", "preau_school": "moulin", "cn": "Claire Martin-Moulin"}))
    PASSWORDS["moulin.t1"] = "moulin-pw"
    returned = sign_in(signin_server, "moulin.t1")
    assert returned.params["error"] == "unknown_account"
    assert "code" not in returned.params


def test_a_bad_start_is_a_french_page(signin_server: SigninServer):
    _, challenge = pkce()
    for params in ({"redirect_uri": "https://evil.example/", "code_challenge": challenge,
                    "code_challenge_method": "S256"},
                   {"redirect_uri": signin_server.own_page, "code_challenge": challenge,
                    "code_challenge_method": "plain"},
                   {"redirect_uri": signin_server.own_page}):
        page = httpx.get(f"{signin_server.url}/signin/hugo/oidc/start", params=params,
                         timeout=10)
        assert page.status_code == 400
        assert "Connexion impossible" in page.text
    assert httpx.get(f"{signin_server.url}/signin/moulin/oidc/start", timeout=10
                     ).status_code == 404


def test_a_parent_signs_in_with_cas(signin_server: SigninServer):
    returned = sign_in(signin_server, "marc.petit", kind="cas")
    assert returned.params["state"] == "app-state-1"
    answer = exchange(signin_server, returned)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "p1"


def test_logging_out_at_the_provider_cuts_the_connection(signin_server: SigninServer):
    client = browser_like()  # the browser: it keeps the provider's cookie
    returned = sign_in(signin_server, "claire.martin", client=client)
    credentials = exchange(signin_server, returned).json()
    # The school turned front-channel logout on: Préau bound this browser to the sign-in.
    assert client.cookies.get("preau_oidc_logout", path="/signin/hugo/oidc/")

    async def run() -> None:
        wire, _ = await Wire.signed_in(signin_server.url.replace("http", "ws") + "/ws",
                                       credentials["access_token"])
        try:
            # Préau's logout page sends the browser to the provider's end_session…
            out = client.get(f"{signin_server.url}/signin/hugo/oidc/logout",
                             params={"redirect_uri": signin_server.own_page})
            assert out.status_code == 303
            page = await asyncio.to_thread(
                client.get, out.headers["location"], follow_redirects=True)
            if 'name="confirm"' in page.text:  # « Do you want to logout? » Accept.
                page = await asyncio.to_thread(
                    client.post, str(page.url), data=hidden_fields(page.text),
                    follow_redirects=True)
            # …whose page loads Préau's front-channel logout in an iframe, as browsers do.
            frames = re.findall(r'<iframe[^>]*src="([^"]+)"', page.text)
            assert frames, page.text[-2000:]
            for src in frames:
                frame = await asyncio.to_thread(client.get, src.replace("&amp;", "&"))
                assert frame.status_code == 200
            code, _reason = await wire.closed(timeout=10)
            assert code == 4501
        finally:
            await wire.close()

    asyncio.run(run())
    refreshed = httpx.post(f"{signin_server.url}/api/session/refresh",
                           json={"refresh_token": credentials["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 401


def test_a_typed_front_channel_url_ends_nothing(signin_server: SigninServer):
    # The front-channel URL names the teacher by her login: a pupil who knows it may
    # load it, with no cookie or with the cookie of their own sign-in. Nothing ends.
    returned = sign_in(signin_server, "claire.martin", client=browser_like())
    credentials = exchange(signin_server, returned).json()
    intruder = browser_like()
    assert exchange(signin_server, sign_in(signin_server, "marc.petit",
                                           client=intruder)).status_code == 200
    url = f"{signin_server.url}/signin/hugo/oidc/frontchannel-logout"
    params = {"iss": signin_server.provider.issuer, "sid": "claire.martin"}

    async def run() -> None:
        wire = await live(signin_server, credentials["access_token"])
        try:
            typed = await asyncio.to_thread(httpx.get, url, params=params, timeout=10)
            assert typed.status_code == 200
            own_cookie = await asyncio.to_thread(intruder.get, url, params=params)
            assert own_cookie.status_code == 200
            assert (await wire.request({"type": "ping"}))["type"] == "pong"
        finally:
            await wire.close()

    asyncio.run(run())
    refreshed = httpx.post(f"{signin_server.url}/api/session/refresh",
                           json={"refresh_token": credentials["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    assert me(signin_server, refreshed.json()["access_token"]).status_code == 200


def test_front_channel_logout_is_off_unless_the_school_turns_it_on(
        identity_provider, tmp_path, limits, schools_url: str):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    identity_provider.configure(redirect_uris=[f"{base}/signin/hugo/oidc/callback"],
                                frontchannel_logout_url=f"{base}/signin/hugo/oidc/"
                                "frontchannel-logout")
    config = Config(database_url=schools_url, jwt_secret=SECRET, identity_file=str(
        identity_file(tmp_path / "id.toml", identity_provider, frontchannel_logout=False)))
    with serve(config, ManualClock(SCHOOL_DAY), limits, port=port) as url:
        server = SigninServer(url, identity_provider, ManualClock(SCHOOL_DAY))
        client = browser_like()
        credentials = exchange(server, sign_in(server, "claire.martin", client=client)
                               ).json()
        answer = client.get(f"{url}/signin/hugo/oidc/frontchannel-logout",
                            params={"iss": identity_provider.issuer, "sid": "claire.martin"})
        assert answer.status_code == 404
        refreshed = httpx.post(f"{url}/api/session/refresh", timeout=10,
                               json={"refresh_token": credentials["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text


def hidden_fields(text: str) -> dict[str, str]:
    fields = {}
    for tag in re.findall(r'<input[^>]*type="hidden"[^>]*>', text):
        attributes = dict(re.findall(r'(name|value)="([^"]*)"', tag))
        if "name" in attributes:
            fields[attributes["name"]] = html.unescape(attributes.get("value", ""))
    return fields


def submit(client: httpx.Client, page: httpx.Response, login: str) -> httpx.Response:
    return submit_login(client, page, login, PASSWORDS[login])


async def live(server: SigninServer, token: str) -> Wire:
    wire, _ = await Wire.signed_in(server.url.replace("http", "ws") + "/ws", token)
    return wire


def logout_token(server: SigninServer, *, sid: str, key: Any = None) -> str:
    """A logout token as the provider would sign it (Back-Channel Logout 1.0), with the
    provider's own key: LemonLDAP::NG 2.16 sends none itself."""
    provider = server.provider
    signing = key or RSAKey.import_key(provider._private_pem)
    now = int(time.time())
    return jwt.encode({"alg": "RS256", "kid": provider.key_id, "typ": "logout+jwt"},
                      {"iss": provider.issuer, "aud": provider.client_id, "iat": now,
                       "exp": now + 120, "jti": secrets.token_hex(8), "sid": sid,
                       "events": {"http://schemas.openid.net/event/backchannel-logout": {}}},
                      signing)


def test_a_back_channel_logout_cuts_the_connection(signin_server: SigninServer):
    returned = sign_in(signin_server, "claire.martin")
    credentials = exchange(signin_server, returned).json()
    url = f"{signin_server.url}/signin/hugo/oidc/backchannel-logout"

    async def run() -> None:
        wire = await live(signin_server, credentials["access_token"])
        try:
            # Signed with another key (same kid): refused, the connection stays.
            forged = logout_token(signin_server, sid="claire.martin",
                                  key=RSAKey.generate_key(2048, private=True))
            answer = await asyncio.to_thread(httpx.post, url, data={"logout_token": forged})
            assert answer.status_code == 400
            assert (await wire.request({"type": "ping"}))["type"] == "pong"
            good = logout_token(signin_server, sid="claire.martin")
            answer = await asyncio.to_thread(httpx.post, url, data={"logout_token": good})
            assert answer.status_code == 200
            code, _reason = await wire.closed(timeout=10)
            assert code == 4501
        finally:
            await wire.close()

    asyncio.run(run())
    assert me(signin_server, credentials["access_token"]).status_code == 401


def test_cas_single_logout_cuts_the_connection(signin_server: SigninServer):
    client = browser_like()
    returned = sign_in(signin_server, "marc.petit", kind="cas", client=client)
    credentials = exchange(signin_server, returned).json()

    async def run() -> None:
        wire = await live(signin_server, credentials["access_token"])
        try:
            out = client.get(f"{signin_server.url}/signin/hugo/cas/logout",
                             params={"redirect_uri": signin_server.own_page})
            assert out.status_code == 303
            assert out.headers["location"].startswith(signin_server.provider.cas_url)
            # The CAS server ends its session and POSTs a logoutRequest to Préau.
            await asyncio.to_thread(client.get, out.headers["location"],
                                    follow_redirects=True)
            code, _reason = await wire.closed(timeout=10)
            assert code == 4501
        finally:
            await wire.close()

    asyncio.run(run())


def test_a_deactivated_user_gets_no_code(signin_server: SigninServer, schools_url: str):
    doc = school_doc()
    doc["users"] = [u for u in doc["users"] if u["id"] not in ("p1",)]
    for u in doc["users"]:  # p1's children lose their parent link
        if "parents" in u:
            u["parents"] = [p for p in u["parents"] if p != "p1"]

    async def reimport() -> None:
        store = await open_store(schools_url)
        try:
            await store.import_directory(parse_directory(doc), actor="test", now=SCHOOL_DAY)
        finally:
            await store.close()

    asyncio.run(reimport())
    returned = sign_in(signin_server, "marc.petit")
    assert returned.params["error"] == "unknown_account"
    assert "code" not in returned.params


def test_logout_ends_the_session(signin_server: SigninServer):
    returned = sign_in(signin_server, "claire.martin")
    credentials = exchange(signin_server, returned).json()
    out = httpx.post(f"{signin_server.url}/api/session/logout", timeout=10,
                     headers={"Authorization": f"Bearer {credentials['access_token']}"})
    assert out.status_code == 200
    assert me(signin_server, credentials["access_token"]).status_code == 401
    refreshed = httpx.post(f"{signin_server.url}/api/session/refresh",
                           json={"refresh_token": credentials["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 401


def test_starts_and_exchanges_are_limited_per_address(signin_server: SigninServer):
    # Each start writes a pending sign-in, for anyone who asks: an address gets 50 at
    # once, then 5 a second.
    with httpx.Client(base_url=signin_server.url, timeout=10) as client:
        answers = [client.get("/signin/hugo/oidc/start").status_code for _ in range(51)]
        assert answers[:50] == [400] * 50
        assert answers[50] == 429
        refused = client.post("/api/signin/token", json={})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "retry_at" in refused.json()["error"]


def test_a_busy_database_is_a_french_page_not_a_500(identity_provider, tmp_path, limits):
    path = tmp_path / "busy.db"
    _import_schools(f"sqlite:///{path}")
    config = Config(database_url=f"sqlite:///{path}?busy_timeout_ms=100", jwt_secret=SECRET,
                    identity_file=str(identity_file(tmp_path / "id.toml", identity_provider)))
    _, challenge = pkce()
    with serve(config, ManualClock(SCHOOL_DAY), limits) as url, write_lock_held(str(path)):
        answer = httpx.get(f"{url}/signin/hugo/oidc/start", timeout=10, params={
            "redirect_uri": f"{url}/", "code_challenge": challenge,
            "code_challenge_method": "S256"})
        assert answer.status_code == 503
        assert "réessayez dans un instant" in answer.text
        exchanged = httpx.post(f"{url}/api/signin/token", timeout=10, json={
            "code": "aHVnbw.x", "code_verifier": pkce()[0], "redirect_uri": f"{url}/"})
        assert exchanged.status_code == 503
        assert exchanged.json()["error"]["code"] == "unavailable"
        back = httpx.get(f"{url}/signin/hugo/oidc/callback", timeout=10,
                         params={"state": "s", "code": "c"})
        assert back.status_code == 503
        assert "réessayez dans un instant" in back.text


def test_cas_2_names_the_directory_id_by_the_user_name(identity_provider, tmp_path, limits,
                                                       schools_url: str):
    # CAS 2.0 releases no attributes: the CAS user name is the directory id.
    identity_provider.add_account(Account("p2", "p2-pw", {"cn": "Nadia Moreau"}))
    PASSWORDS["p2"] = "p2-pw"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    identity_provider.configure(redirect_uris=[f"{base}/signin/hugo/oidc/callback"],
                                cas_services=[f"{base}/signin/hugo/cas/callback"])
    config = Config(database_url=schools_url, jwt_secret=SECRET, identity_file=str(
        identity_file(tmp_path / "id.toml", identity_provider, cas_version=2)))
    with serve(config, ManualClock(SCHOOL_DAY), limits, port=port) as url:
        server = SigninServer(url, identity_provider, ManualClock(SCHOOL_DAY))
        returned = sign_in(server, "p2", kind="cas")
        answer = exchange(server, returned)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == "p2"
        # marc.petit's user name is no directory id: nobody.
        assert sign_in(server, "marc.petit", kind="cas").params["error"] == "unknown_account"


def test_any_node_answers_any_step(identity_provider, tmp_path, limits, schools_url: str):
    # Two processes on one database behind one public address (here: the second's):
    # the sign-in starts on the first, the ENT returns to the second, the app exchanges
    # its code on the first.
    first_port, second_port = free_port(), free_port()
    public = f"http://127.0.0.1:{second_port}"
    identity_provider.configure(redirect_uris=[f"{public}/signin/hugo/oidc/callback"],
                                cas_services=[f"{public}/signin/hugo/cas/callback"])
    config = Config(database_url=schools_url, jwt_secret=SECRET, identity_file=str(
        identity_file(tmp_path / "id.toml", identity_provider, public_url=public)))
    clock = ManualClock(SCHOOL_DAY)
    with serve(config, clock, limits, port=first_port) as first, \
            serve(config, clock, limits, port=second_port):
        server = SigninServer(first, identity_provider, clock, public=public)
        returned = sign_in(server, "claire.martin", redirect_uri=APP_URI)
        assert returned.params["state"] == "app-state-1"
        answer = exchange(server, returned)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == "t1"
