"""The `preau` command as a user runs it: a real process, a real database file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from server.model import SchoolId, UserId
from server.store import SqliteStore
from server.tokens import ISSUED_AT_LEEWAY, issue_token
from tests.conftest import SECRET, free_port
from tests.schools import school_doc

ROOT = Path(__file__).resolve().parent.parent


def preau(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
    full_env["PREAU_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60, input=stdin)


def write(tmp_path: Path, doc: Any, name: str = "school.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


async def _meta(tmp_path: Path, key: str) -> str | None:
    st = SqliteStore(str(tmp_path / "cli.db"))
    await st.open()
    try:
        return await st.get_meta(key)
    finally:
        await st.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def served(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """``preau serve`` on the test's database, as an operator runs it; yields its URL."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
    full_env.update({"PREAU_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                     "PYTHONPATH": str(ROOT), **env})
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port",
                                    str(port)], cwd=tmp_path, env=full_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class TestDirectoryImport:
    def test_import_then_reimport(self, tmp_path: Path):
        path = write(tmp_path, school_doc())
        first = preau(tmp_path, "directory", "import", str(path))
        assert first.returncode == 0, first.stderr
        assert "created: 10 users added" in first.stdout
        doc = school_doc()
        doc["users"] = [u for u in doc["users"] if u["id"] != "e3" and u["id"] != "p3"]
        second = preau(tmp_path, "directory", "import", str(write(tmp_path, doc)))
        assert second.returncode == 0, second.stderr
        assert "updated: 0 users added, 8 updated, 2 deactivated" in second.stdout

    def test_bad_file_is_rejected_whole_and_changes_nothing(self, tmp_path: Path):
        assert preau(tmp_path, "directory", "import",
                     str(write(tmp_path, school_doc()))).returncode == 0
        doc = school_doc()
        doc["users"][0]["teaches"] = ["9Z"]           # unknown class
        doc["users"][-1]["children"] = ["t1"]         # a child that is not a student
        doc["users"].append(dict(doc["users"][1]))    # duplicate id
        doc["users"].append({"id": "new", "role": "staff", "first_name": "N",
                             "last_name": "Ew", "profile": "staff"})
        result = preau(tmp_path, "directory", "import", str(write(tmp_path, doc)))
        assert result.returncode == 1
        for words in ("9Z", "t1", "duplicate"):
            assert words in result.stderr, result.stderr
        # "new" would have been added by a half-import; the token command proves it was not.
        token = preau(tmp_path, "token", "new")
        assert token.returncode == 2
        assert "no active user 'new'" in token.stderr

    def test_losing_most_of_the_school_needs_confirmation(self, tmp_path: Path):
        full = preau(tmp_path, "demo-school", "--classes", "2", "--students", "10")
        path = tmp_path / "demo.json"
        path.write_text(full.stdout, encoding="utf-8")
        assert preau(tmp_path, "directory", "import", str(path)).returncode == 0
        doc = json.loads(full.stdout)
        doc["users"] = [u for u in doc["users"] if u["role"] in ("staff", "teacher")]
        small = write(tmp_path, doc, "small.json")
        refused = preau(tmp_path, "directory", "import", str(small))
        assert refused.returncode == 2
        assert "nothing was imported" in refused.stderr
        demo = {"PREAU_DEMO": "1"}
        assert preau(tmp_path, "token", "s-0001", env=demo).returncode == 0  # still there
        forced = preau(tmp_path, "directory", "import", str(small), "--allow-mass-removal")
        assert forced.returncode == 0, forced.stderr
        assert preau(tmp_path, "token", "s-0001", env=demo).returncode == 2

    def test_not_json(self, tmp_path: Path):
        path = tmp_path / "broken.json"
        path.write_text('{"format": 1,\n  "school": ', encoding="utf-8")
        result = preau(tmp_path, "directory", "import", str(path))
        assert result.returncode == 1
        assert "line 2" in result.stderr

    def test_missing_file(self, tmp_path: Path):
        result = preau(tmp_path, "directory", "import", str(tmp_path / "nope.json"))
        assert result.returncode == 1
        assert "nope.json" in result.stderr


class TestTokens:
    def test_demo_token_uses_the_secret_kept_in_the_database(self, tmp_path: Path):
        preau(tmp_path, "directory", "import", str(write(tmp_path, school_doc())))
        a = preau(tmp_path, "token", "t1", env={"PREAU_DEMO": "1"})  # keeps a demo secret
        b = preau(tmp_path, "token", "e1", "--ttl", "60")  # finds it: a demo database
        assert a.returncode == 0, a.stderr
        assert b.returncode == 0, b.stderr
        assert jwt.get_unverified_header(a.stdout.strip())["alg"] == "HS256"
        secret = asyncio.run(_meta(tmp_path, "demo_jwt_secret"))
        assert secret is not None
        jwt.decode(b.stdout.strip(), secret, algorithms=["HS256"])
        claims = jwt.decode(a.stdout.strip(), options={"verify_signature": False})
        assert (claims["sub"], claims["sch"]) == ("t1", "hugo")
        short = jwt.decode(b.stdout.strip(), options={"verify_signature": False})
        assert short["exp"] - short["iat"] == 60

    def test_configured_secret_signs(self, tmp_path: Path):
        preau(tmp_path, "directory", "import", str(write(tmp_path, school_doc())))
        secret = "s" * 40
        out = preau(tmp_path, "token", "a1", env={"PREAU_JWT_SECRET": secret})
        claims = jwt.decode(out.stdout.strip(), secret, algorithms=["HS256"])
        assert claims["sub"] == "a1"
        # Not PREAU_TOKEN_TTL (the minutes of sessions' access tokens): 12 h, no session.
        assert claims["exp"] - claims["iat"] == 12 * 3600
        assert "sid" not in claims
        env = {"PREAU_JWT_SECRET": secret, "PREAU_TOKEN_TTL": "300"}
        again = preau(tmp_path, "token", "a1", env=env)
        claims = jwt.decode(again.stdout.strip(), secret, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 12 * 3600

    def test_no_secret_outside_demo_mode_is_refused(self, tmp_path: Path):
        """A database never served in demo mode does not quietly become one."""
        preau(tmp_path, "directory", "import", str(write(tmp_path, school_doc())))
        out = preau(tmp_path, "token", "t1")
        assert out.returncode == 2
        assert out.stdout == ""
        assert "no JWT secret to sign with: set PREAU_JWT_SECRET" in out.stderr
        assert asyncio.run(_meta(tmp_path, "demo_jwt_secret")) is None

    def test_a_server_clock_a_year_ahead_accepts_its_tokens(self, tmp_path: Path):
        """iat and nbf are checked against the server's clock, like exp: the README's demo
        command works whatever the real date."""
        preau(tmp_path, "directory", "import", str(write(tmp_path, school_doc())))
        ahead = datetime.now(UTC) + timedelta(days=365)
        env = {"PREAU_JWT_SECRET": SECRET, "PREAU_CLOCK_START": ahead.isoformat()}
        made = preau(tmp_path, "token", "t1", env=env)
        assert made.returncode == 0, made.stderr
        with served(tmp_path, env) as url:
            ok = httpx.get(f"{url}/api/contacts", headers=bearer(made.stdout.strip()))
            assert ok.status_code == 200, ok.text
            # Issued in that clock's future, beyond the leeway: refused.
            later = ahead + timedelta(hours=1) + ISSUED_AT_LEEWAY
            early = issue_token(SECRET, SchoolId("hugo"), UserId("t1"),
                                ttl=timedelta(hours=2), now=later)
            refused = httpx.get(f"{url}/api/contacts", headers=bearer(early))
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert "pas encore valide" in refused.json()["error"]["message"]

    def test_token_needs_a_school(self, tmp_path: Path):
        out = preau(tmp_path, "token", "t1")
        assert out.returncode == 2
        assert "directory import" in out.stderr


class TestServe:
    def test_production_refuses_to_start_without_a_secret(self, tmp_path: Path):
        out = preau(tmp_path, "serve", "--port", "1")
        assert out.returncode == 2
        assert "PREAU_JWT_SECRET" in out.stderr
        weak = preau(tmp_path, "serve", "--port", "1", env={"PREAU_JWT_SECRET": "short"})
        assert weak.returncode == 2
        assert "too short" in weak.stderr

    def test_a_mistake_in_the_identity_file_stops_serve(self, tmp_path: Path):
        identity = tmp_path / "identity.toml"
        identity.write_text('[schools.hugo.tokens]\nalgorithm = "RS256"\nisuer = "typo"\n')
        out = preau(tmp_path, "serve", "--port", "1",
                    env={"PREAU_JWT_SECRET": SECRET, "PREAU_IDENTITY_FILE": str(identity)})
        assert out.returncode == 2
        assert "[schools.hugo.tokens]: unknown key 'isuer'" in out.stderr
        assert str(identity) in out.stderr

    def test_bad_log_level_is_named(self, tmp_path: Path):
        out = preau(tmp_path, "serve", "--port", "1",
                    env={"PREAU_JWT_SECRET": SECRET, "PREAU_LOG_LEVEL": "loud"})
        assert out.returncode == 2
        assert "PREAU_LOG_LEVEL must be one of debug, info, warning, error" in out.stderr

    def test_bad_environment_is_named(self, tmp_path: Path):
        out = preau(tmp_path, "migrate", env={"PREAU_PORT": "eighty"})
        assert out.returncode == 2
        assert "PREAU_PORT" in out.stderr
        out = preau(tmp_path, "migrate", env={"PREAU_DATABASE_URL": "mysql://x"})
        assert out.returncode == 2
        assert "unsupported database URL" in out.stderr


class TestDemoSchool:
    @pytest.mark.parametrize("size", [("2", "3"), ("30", "28")])
    def test_generates_an_importable_school(self, tmp_path: Path, size: tuple[str, str]):
        out = preau(tmp_path, "demo-school", "--classes", size[0], "--students", size[1])
        assert out.returncode == 0, out.stderr
        path = tmp_path / "demo.json"
        path.write_text(out.stdout, encoding="utf-8")
        result = preau(tmp_path, "directory", "import", str(path))
        assert result.returncode == 0, result.stderr
        assert preau(tmp_path, "token", "admin", env={"PREAU_DEMO": "1"}).returncode == 0

    def test_setup_opens_the_tour_of_delegates_broadcasts(self, tmp_path: Path):
        path = write(tmp_path, school_doc())
        assert preau(tmp_path, "directory", "import", str(path)).returncode == 0
        first = preau(tmp_path, "demo-setup")
        assert first.returncode == 0, first.stderr
        assert "3 more parents opted in" in first.stdout
        assert "0 more parents" in preau(tmp_path, "demo-setup").stdout  # idempotent

        async def check() -> None:
            st = SqliteStore(str(tmp_path / "cli.db"))
            await st.open()
            try:
                state = await st.load_school(SchoolId("hugo"))
                fields = {e.field for e in await st.audit_log(SchoolId("hugo"))}
            finally:
                await st.close()
            assert state.settings.parent_messaging_enabled is True
            assert all(state.preferences_of(UserId(p)).parent_messaging_opt_in
                       for p in ("p1", "p2", "p3"))
            assert "parent_messaging_enabled" in fields  # recorded, like any change

        asyncio.run(check())

    def test_imports_setup_and_admin_changes_share_the_servers_clock(self, tmp_path: Path):
        """With PREAU_CLOCK_START, every audit entry is on that clock: a re-import that
        changes the time zone, demo-setup and an admin's settings change alike."""
        start = datetime(2016, 3, 1, 9, 0, tzinfo=UTC)  # years away from the real date
        env = {"PREAU_JWT_SECRET": SECRET, "PREAU_CLOCK_START": start.isoformat()}
        assert preau(tmp_path, "directory", "import", str(write(tmp_path, school_doc())),
                     env=env).returncode == 0
        moved = write(tmp_path, school_doc(timezone="Europe/Brussels"), "moved.json")
        reimport = preau(tmp_path, "directory", "import", str(moved), env=env)
        assert reimport.returncode == 0, reimport.stderr
        setup = preau(tmp_path, "demo-setup", env=env)
        assert setup.returncode == 0, setup.stderr
        token = preau(tmp_path, "token", "a1", env=env).stdout.strip()
        with served(tmp_path, env) as url:
            changed = httpx.patch(f"{url}/api/settings", headers=bearer(token),
                                  json={"discussions_enabled": False})
            assert changed.status_code == 200, changed.text
            audit = httpx.get(f"{url}/api/audit?limit=200", headers=bearer(token))
            assert audit.status_code == 200, audit.text
        entries = audit.json()["items"]
        by_actor = {e["actor"] for e in entries}
        assert {"import", "demo-setup", "a1"} <= by_actor
        days = {(e["actor"], datetime.fromisoformat(e["at"].replace("Z", "+00:00")).date())
                for e in entries}
        assert days == {(actor, start.date()) for actor in by_actor}
