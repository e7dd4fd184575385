"""The ``preau`` command: serve, import a directory, make a demo school, issue tokens,
copy a database.

Every subcommand reads the same :class:`~server.config.Config` from the
environment; flags override it. Failures print one ``preau: error: …`` line
(or the list of problems of a rejected directory) and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from .clock import configured_clock
from .config import Config
from .errors import ConfigurationError, DirectoryError, PreauError
from .host_tokens import host_token_configs
from .model import Role, SchoolId, UserId
from .store import Store, displayed_url, open_store, sqlite_path
from .tokens import issue_token

__all__ = ["MASS_REMOVAL_MIN", "main"]

MASS_REMOVAL_MIN = 10  # below this many removals, a small school's file is trusted as is

LOG_LEVELS = ("debug", "info", "warning", "error")
# Préau's own loggers: ``preau.*`` (node, session…) and modules named after their package
# (``server.broker.redis``). Third-party libraries keep Python's default (warnings only).
_OWN_LOGGERS = ("preau", "server")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        _make_parent_dir(config)
        result: int = args.run(args, config)
        return result
    except DirectoryError as exc:
        print(f"preau: error: {exc}", file=sys.stderr)
        return 1
    except (PreauError, OSError) as exc:
        print(f"preau: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preau", description="Préau: real-time discussions for schools."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the HTTP and WebSocket API")
    _database_flag(serve)
    serve.add_argument("--host", help="bind address (PREAU_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (PREAU_PORT, default 8000)")
    serve.add_argument("--demo", action="store_true",
                       help="demo mode: generate a JWT secret if none is configured")
    serve.add_argument("--log-level", choices=LOG_LEVELS,
                       help="the least severe log lines shown (PREAU_LOG_LEVEL, default info)")
    serve.set_defaults(run=_serve)

    directory = sub.add_parser("directory", help="manage a school's directory")
    dsub = directory.add_subparsers(required=True, metavar="ACTION")
    imp = dsub.add_parser("import", help="create or update a school from a JSON file")
    imp.add_argument("file", type=Path, help="directory file (format: docs/directory.md)")
    imp.add_argument("--allow-mass-removal", action="store_true",
                     help="accept a file that deactivates more than half of the school's users")
    _database_flag(imp)
    imp.set_defaults(run=_import)

    demo = sub.add_parser("demo-school", help="print a generated demo school as JSON")
    demo.add_argument("--classes", type=_positive, default=30)
    demo.add_argument("--students", type=_positive, default=28, help="students per class")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--school-id", default="demo")
    demo.set_defaults(run=_demo_school)

    token = sub.add_parser("token", help="print a signed token for a user (development)")
    token.add_argument("user_id")
    token.add_argument("--school", help="school id (default: the only school)")
    token.add_argument("--ttl", type=_positive, help="lifetime in seconds (default 12 h)")
    _database_flag(token)
    token.set_defaults(run=_token)

    setup = sub.add_parser(
        "demo-setup", help="switch on messaging between parents and opt every parent in "
                           "(a demo school's tour: delegates' broadcasts reach the parents)")
    setup.add_argument("--school", help="school id (default: the only school)")
    _database_flag(setup)
    setup.set_defaults(run=_demo_setup)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    _database_flag(migrate)
    migrate.set_defaults(run=_migrate)

    store = sub.add_parser("store", help="operate on a whole database")
    ssub = store.add_subparsers(required=True, metavar="ACTION")
    copy = ssub.add_parser(
        "copy", help="copy a whole database into an empty one (SQLite to PostgreSQL), in "
                     "one transaction; see docs/moving-to-postgresql.md")
    copy.add_argument("--from", dest="source", metavar="URL", required=True,
                      help="the database to copy (sqlite:///path/to/preau.db)")
    copy.add_argument("--to", dest="destination", metavar="URL", required=True,
                      help="the empty database to fill (postgresql://…)")
    copy.add_argument("--batch", type=_positive, default=5000,
                      help="rows read and written at a time (default 5000)")
    copy.set_defaults(run=_store_copy)

    from .loadtest.options import add_arguments  # argparse only; the engine loads in _loadtest

    loadtest = sub.add_parser("loadtest", help="simulate classrooms against running servers")
    add_arguments(loadtest)
    loadtest.set_defaults(run=_loadtest)
    return parser


def _database_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database", metavar="URL",
                   help="database URL (PREAU_DATABASE_URL, default sqlite:///var/preau.db)")


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def _config(args: argparse.Namespace) -> Config:
    config = Config.from_env()
    overrides: dict[str, object] = {}
    if getattr(args, "database", None):
        overrides["database_url"] = args.database
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "demo", False):
        overrides["demo"] = True
    return replace(config, **overrides)  # type: ignore[arg-type]


def _make_parent_dir(config: Config) -> None:
    """Create the folder of a SQLite file (``var/`` by default) so that first use works."""
    path = sqlite_path(config.database_url)
    if path not in (None, ":memory:"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


async def _open(config: Config) -> Store:
    return await open_store(config.database_url)


async def _choose_school(store: Store, wanted: str | None) -> SchoolId:
    """The school named by ``--school``, or the database's only one."""
    schools = await store.list_schools()
    if wanted:
        if SchoolId(wanted) not in schools:
            raise ConfigurationError(f"no school {wanted!r} in the database")
        return SchoolId(wanted)
    if len(schools) == 1:
        return schools[0]
    if not schools:
        raise ConfigurationError(
            "the database has no school yet: run `preau directory import FILE` first")
    raise ConfigurationError(f"several schools ({', '.join(schools)}): choose one with --school")


# ---------------------------------------------------------------------- commands


def _serve(args: argparse.Namespace, config: Config) -> int:
    import uvicorn

    from .handshake import uvicorn_options
    from .web import create_app

    config.check()
    host_token_configs(config.identity_file)  # a wrong identity file stops here (exit 2)
    _make_parent_dir(config)
    level = _log_level(args)
    app = create_app(config, clock=configured_clock(config.clock_start))
    print(f"Préau serving on http://{config.host}:{config.port} "
          f"(database {displayed_url(config.database_url)}{', demo mode' if config.demo else ''})",
          file=sys.stderr)
    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn would close every WebSocket with 1012 at once; first let each
            # client finish its request in progress and tell it to reconnect elsewhere.
            for server in self.servers:
                server.close()
            await app.drain(grace=5.0)
            await super().shutdown(sockets)

    Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=level,
                          timeout_graceful_shutdown=10, **uvicorn_options(config))).run()
    return 0


def _log_level(args: argparse.Namespace) -> str:
    """Show Préau's log lines from ``--log-level`` (or ``PREAU_LOG_LEVEL``) up, on stderr
    like uvicorn's: without this, Python shows only warnings, and INFO lines such as
    "reconnected to Redis" would never appear."""
    import logging

    level = args.log_level or os.environ.get("PREAU_LOG_LEVEL", "info").strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigurationError(
            f"PREAU_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in _OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        logger.addHandler(handler)
        logger.propagate = False  # one line each, whatever else configures the root
    return level


def _import(args: argparse.Namespace, config: Config) -> int:
    from .directory import load_directory

    directory = load_directory(args.file)

    async def run() -> int:
        store = await _open(config)
        try:
            if directory.school.id in await store.list_schools():
                current = (await store.load_school(directory.school.id)).directory.users
                removed = sum(1 for uid in current if uid not in directory.users)
                if (removed > MASS_REMOVAL_MIN and removed * 2 > len(current)
                        and not args.allow_mass_removal):
                    raise ConfigurationError(
                        f"this file would deactivate {removed} of the {len(current)} users of "
                        f"{directory.school.id!r}; nothing was imported. If that is intended, "
                        "run again with --allow-mass-removal")
            # The server's clock (PREAU_CLOCK_START), not the real one: the audit log
            # holds both this entry and the server's.
            report = await store.import_directory(directory, actor="import",
                                                  now=configured_clock(config.clock_start)())
        finally:
            await store.close()
        verb = "created" if report.created else "updated"
        print(f"school {report.school_id!r} {verb}: {report.users_added} users added, "
              f"{report.users_updated} updated, {report.users_deactivated} deactivated "
              f"(version {report.version})")
        return 0

    return asyncio.run(run())


def _demo_school(args: argparse.Namespace, config: Config) -> int:
    from .demo import generate_school

    doc = generate_school(classes=args.classes, students=args.students, seed=args.seed,
                          school_id=args.school_id)
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


def _token(args: argparse.Namespace, config: Config) -> int:
    async def run() -> int:
        store = await _open(config)
        try:
            school = await _choose_school(store, args.school)
            state = await store.load_school(school)
            if UserId(args.user_id) not in state.directory.users:
                raise ConfigurationError(f"no active user {args.user_id!r} in {school!r}")
            secret = await _token_secret(config, store)
        finally:
            await store.close()
        ttl = timedelta(seconds=args.ttl or config.token_ttl)
        # The token must be valid by the server's clock (PREAU_CLOCK_START shifts it).
        now = configured_clock(config.clock_start)()
        print(issue_token(secret, school, UserId(args.user_id), ttl=ttl, now=now))
        return 0

    return asyncio.run(run())


async def _token_secret(config: Config, store: Store) -> str:
    """The secret the server signs with: configured, or the demo one kept in the database.

    A database that was never served in demo mode gets no secret here: storing one would
    quietly make it a demo database, whose tokens a production server would refuse anyway.
    """
    from .web import DEMO_SECRET_KEY, resolve_secret

    if config.jwt_secret is None and not config.demo:
        kept = await store.get_meta(DEMO_SECRET_KEY)
        if kept is None:
            raise ConfigurationError(
                "no JWT secret to sign with: set PREAU_JWT_SECRET to the server's secret, "
                "or PREAU_DEMO=1 for a demo database (as `preau serve --demo` uses)")
        return kept
    return await resolve_secret(config, store)


def _demo_setup(args: argparse.Namespace, config: Config) -> int:
    async def run() -> int:
        store = await _open(config)
        try:
            school = await _choose_school(store, args.school)
            state = await store.load_school(school)
            now = configured_clock(config.clock_start)()  # the server's clock, as above
            if not state.settings.parent_messaging_enabled:
                await store.update_settings(
                    school, replace(state.settings, parent_messaging_enabled=True),
                    actor="demo-setup", now=now)
            parents = [u.id for u in state.directory.users.values() if u.role is Role.PARENT
                       and not state.preferences_of(u.id).parent_messaging_opt_in]
            for user_id in parents:
                prefs = replace(state.preferences_of(user_id), parent_messaging_opt_in=True)
                await store.update_preferences(school, user_id, prefs, actor="demo-setup",
                                               now=now)
        finally:
            await store.close()
        print(f"school {school!r}: messaging between parents is on; {len(parents)} more "
              "parents opted in")
        return 0

    return asyncio.run(run())


def _migrate(args: argparse.Namespace, config: Config) -> int:
    async def run() -> int:
        store = await _open(config)
        await store.close()
        print(f"database {displayed_url(config.database_url)} is up to date")
        return 0

    return asyncio.run(run())


def _store_copy(args: argparse.Namespace, config: Config) -> int:
    from .store.copy import TableCopied
    from .store.copy_sides import copy_database

    def progress(done: TableCopied) -> None:
        print(f"{done.table:<22} {done.rows:>10} rows  {done.seconds:8.2f} s", flush=True)

    report = asyncio.run(copy_database(args.source, args.destination, batch=args.batch,
                                       progress=progress))
    print(f"copied {report.rows} rows in {len(report.tables)} tables in "
          f"{report.seconds:.2f} s; every table's count checked in the destination, "
          "committed")
    return 0


def _loadtest(args: argparse.Namespace, config: Config) -> int:
    from .loadtest import run

    return run(args, config)
