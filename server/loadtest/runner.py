"""``preau loadtest`` from parsed arguments to exit status: users, tokens, loop, output.

Where the users come from (one of):

- ``--directory FILE``: the directory file the server imported (``preau demo-school``);
- ``--database URL``: the server's database. Without ``--school``, the load test uses a
  school of its own, :data:`OWN_SCHOOL`, generated to the run's size and imported into
  that database (created or updated), so that its discussions never land in a school
  people are looking at (the demo's). ``--school ID`` targets an existing school instead;
- ``--demo-api``: a demo-mode server's ``GET /api/demo/users``. The load test cannot
  create a school through it, so it needs ``--school ID``, said explicitly.

Where the tokens come from (the first that applies):

- ``--secret`` or ``PREAU_JWT_SECRET``: signed here with :func:`server.tokens.issue_token`,
  valid from ``PREAU_CLOCK_START`` when it is set (the server's clock starts there:
  the token must be valid by that clock), else from now, for 12 hours (as ``preau
  token``: ``PREAU_TOKEN_TTL`` is the few minutes of sign-in sessions' access tokens);
- ``--database URL``: the same, with the secret the server keeps in its database in
  demo mode (:func:`server.web.resolve_secret`, as ``preau token`` does);
- ``--demo-api``: ``POST /api/demo/token`` for each user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from server.clock import system_clock
from server.config import Config
from server.demo import generate_school
from server.errors import ConfigurationError
from server.model import SchoolId, UserId
from server.store import Store, open_store, sqlite_path
from server.tokens import issue_token

from .engine import CLOSE_TIMEOUT, REQUEST_TIMEOUT, Aborted, Engine
from .options import MAX_CONNECTIONS, Options, options_from_args
from .plan import Person, Plan, make_plan, people_from_demo_users, people_from_directory
from .report import render_html, render_text, summarize

__all__ = ["run_cli"]

OWN_SCHOOL = "loadtest"
OWN_CLASS_SIZE = 28  # students per class of the generated school, unless --students
HTTP_TIMEOUT = 10.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _School:
    id: str
    people: list[Person]
    tokens_from: str     # "secret", "database" or "demo-api": for the header line
    secret: str | None   # None with --demo-api


def run_cli(args: argparse.Namespace, config: Config) -> int:
    """See :func:`server.loadtest.run`."""
    options = options_from_args(args, secret=args.secret or config.jwt_secret)
    loop = _loop_name(options.loop)
    try:
        return _run_loop(_main(options, config, loop), loop)
    except Aborted as exc:
        print(f"preau loadtest: error: {exc}", file=sys.stderr)
        return 1


async def _main(options: Options, config: Config, loop: str) -> int:
    school = await _school(options, config)
    plan = make_plan(school.people, school=school.id, classes=options.classes,
                     students=options.students, threads=options.threads, rate=options.rate,
                     thread_rate=options.thread_rate, seed=options.seed)
    if len(plan.users) > MAX_CONNECTIONS:
        raise ConfigurationError(f"this plan needs {len(plan.users)} connections, above the "
                                 f"limit of {MAX_CONNECTIONS}: lower --classes or --students")
    _ensure_file_descriptors(len(plan.users))
    tokens = await _tokens(options, config, school, plan)
    _header(options, plan, school, config)
    # Everything is bounded already (ramp, duration, request timeouts, drain, close);
    # this is the last line of defence, so that a run always ends by itself.
    cap = (len(plan.users) / options.ramp + 2 * REQUEST_TIMEOUT + options.duration
           + options.drain + 2 * REQUEST_TIMEOUT + 2 * CLOSE_TIMEOUT + 30)
    engine = Engine(options, plan, tokens)
    try:
        async with asyncio.timeout(cap):
            outcome = await engine.run()
    except TimeoutError:
        raise Aborted(f"the run did not finish within {cap:.0f} s; stopped") from None
    doc = summarize(outcome, loop=loop)
    if options.json:
        json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(doc))
    sys.stdout.flush()
    if options.report is not None:
        options.report.write_text(render_html(doc), encoding="utf-8")
        if options.progress:
            print(f"preau loadtest: report written to {options.report}", file=sys.stderr)
    return 0 if doc["ok"] else 1


def _header(options: Options, plan: Plan, school: _School, config: Config) -> None:
    """What is about to happen (unless ``--quiet``), and warnings (always), on stderr."""
    kinds = [c.kind for c in plan.conversations]
    if options.progress:
        valid_from = (f" (valid from PREAU_CLOCK_START {config.clock_start:%Y-%m-%dT%H:%M:%SZ})"
                      if config.clock_start is not None and school.secret is not None else "")
        print(f"preau loadtest: school {school.id!r}, {kinds.count('class')} class "
              f"discussions + {kinds.count('thread')} threads, {len(plan.users)} connections "
              f"to {', '.join(options.urls)}; tokens from {school.tokens_from}{valid_from}",
              file=sys.stderr)
        for note in plan.notes:
            print(f"preau loadtest: note: {note}", file=sys.stderr)
    busiest, rate = max(plan.rate_per_user().items(), key=lambda item: item[1])
    if rate > 0.8 * config.rate_per_second:
        # The server's limit is per connection (PREAU_RATE_LIMIT); its own value is not
        # visible from here, so compare with this environment's, the default 20/s.
        print(f"preau loadtest: warning: {busiest} will send {rate:.1f} messages/s, close "
              f"to the server's limit per connection ({config.rate_per_second:g}/s unless "
              "PREAU_RATE_LIMIT differs there): expect rate_limited refusals",
              file=sys.stderr)


# ---------------------------------------------------------------------- users


async def _school(options: Options, config: Config) -> _School:
    """The people of the school, and how tokens will be made for them."""
    secret = options.secret
    if options.directory is not None:
        from server.directory import load_directory

        directory = load_directory(options.directory)
        school = str(directory.school.id)
        if options.school is not None and options.school != school:
            raise ConfigurationError(f"{options.directory} is school {school!r}, "
                                     f"not {options.school!r}")
        people = people_from_directory(directory)
        if secret is None and options.database is not None:
            store = await _open_database(options.database)
            try:
                secret = await _database_secret(store, config)
            finally:
                await store.close()
            return _School(school, people, "the database's demo secret", secret)
    elif options.database is not None:
        store = await _open_database(options.database)
        try:
            if options.school is None:
                school = await _import_own_school(store, options, config)
            else:
                school = await _school_in(store, options.school)
            state = await store.load_school(SchoolId(school))
            people = people_from_directory(state.directory)
            if secret is None:
                secret = await _database_secret(store, config)
                return _School(school, people, "the database's demo secret", secret)
        finally:
            await store.close()
    elif options.demo_api:
        if options.school is None:
            raise ConfigurationError(
                "--demo-api reaches only the schools already on the server, such as the "
                "demo people are looking at: name the one to load with --school ID, or give "
                f"--database URL so that the load test imports a school of its own "
                f"({OWN_SCHOOL!r})")
        doc = await asyncio.to_thread(
            _http_json, _http_url(options.urls[0],
                                  f"/api/demo/users?school={quote(options.school)}"), None)
        school = str(doc.get("school", {}).get("id", options.school))
        people = people_from_demo_users(doc)
    else:
        raise ConfigurationError(
            "who is in the school? Give --directory FILE (the directory file the server "
            "imported), --database URL (the server's database) or --demo-api "
            "(a server in demo mode)")
    if secret is not None:
        return _School(school, people, "the secret", secret)
    if options.demo_api:
        return _School(school, people, "POST /api/demo/token", None)
    raise ConfigurationError(
        "no way to make tokens: set PREAU_JWT_SECRET (or --secret) to the servers' secret, "
        "give --database URL (a demo server's database keeps its secret), or --demo-api")


async def _open_database(url: str) -> Store:
    path = sqlite_path(url)
    # open_store would create (and migrate) a missing file: a typo must not do that.
    if path not in (None, ":memory:") and not await asyncio.to_thread(os.path.exists, path):
        raise ConfigurationError(f"no database at {path}: is the URL the server's?")
    return await open_store(url)


async def _school_in(store: Store, wanted: str) -> str:
    schools = [str(s) for s in await store.list_schools()]
    if wanted not in schools:
        raise ConfigurationError(f"no school {wanted!r} in the database; schools there: "
                                 f"{', '.join(schools) or 'none'}")
    return wanted


async def _import_own_school(store: Store, options: Options, config: Config) -> str:
    """Create (or bring to this run's size) the load test's own school in ``store``.

    The servers read a school from the database when it is first asked for, and again
    when its version moves, so a running server serves it without a restart.
    """
    from server.directory import parse_directory

    doc = generate_school(classes=options.classes,
                          students=options.students or OWN_CLASS_SIZE,
                          seed=options.seed, school_id=OWN_SCHOOL)
    # The servers' clock: PREAU_CLOCK_START when set (as for the tokens below).
    now = config.clock_start if config.clock_start is not None else system_clock()
    await store.import_directory(parse_directory(doc), actor="loadtest", now=now)
    return OWN_SCHOOL


async def _database_secret(store: Store, config: Config) -> str:
    from server.web import resolve_secret

    # As `preau token` does: the secret a `preau serve --demo` on this database uses.
    return await resolve_secret(replace(config, demo=True), store)


# ---------------------------------------------------------------------- tokens

# Tokens signed here last as long as `preau token`'s: a run must not outlive them.
# (PREAU_TOKEN_TTL is the minutes of sign-in sessions' access tokens, refreshed by
# their clients; the load test does not refresh.)
LOAD_TOKEN_TTL = timedelta(hours=12)


async def _tokens(options: Options, config: Config, school: _School,
                  plan: Plan) -> dict[str, str]:
    if school.secret is not None:
        # Valid by the server's clock: PREAU_CLOCK_START moves it (demos and tests).
        now = config.clock_start if config.clock_start is not None else system_clock()
        ttl = LOAD_TOKEN_TTL
        return {u: issue_token(school.secret, SchoolId(school.id), UserId(u), ttl=ttl, now=now)
                for u in plan.users}
    url = _http_url(options.urls[0], f"/api/demo/token?school={quote(school.id)}")
    limit = asyncio.Semaphore(8)

    async def one(user: str) -> tuple[str, str]:
        async with limit:
            doc = await asyncio.to_thread(_http_json, url, {"user": user})
        return user, str(doc["token"])

    return dict(await asyncio.gather(*(one(u) for u in plan.users)))


def _http_url(base: str, path: str) -> str:
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", "")) + path


def _http_json(url: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    """GET (or POST ``body``) ``url``, return its JSON object; ConfigurationError else."""
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ConfigurationError(f"{url}: 404, the server is not in demo mode; give "
                                     "--secret or --database instead of --demo-api") from None
        raise ConfigurationError(f"{url}: HTTP {exc.code} {exc.read()[:200]!r}") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{url}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{url}: expected a JSON object")
    return doc


# ---------------------------------------------------------------------- process


def _ensure_file_descriptors(connections: int) -> None:
    """Each connection is a socket: raise the soft limit if needed, or refuse."""
    try:
        import resource
    except ImportError:  # not on Unix: let the OS say no
        return
    need = connections + 128
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, need)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < need:
            raise ConfigurationError(f"{connections} connections need {need} open files; "
                                     f"the limit is {soft} (raise it with ulimit -n)")


def _loop_name(wanted: str) -> str:
    """``uvloop`` when asked (it must be installed) or, for ``auto``, when installed."""
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401 -- probing
    except ImportError:
        if wanted == "uvloop":
            raise ConfigurationError("--loop uvloop: uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def _run_loop(main: Coroutine[Any, Any, _T], loop: str) -> _T:
    if loop == "uvloop":
        import uvloop

        # uvloop parses faster and wakes tasks for less; it does not change what is
        # measured, only how much of the machine the generator takes.
        return uvloop.run(main)
    return asyncio.run(main)

