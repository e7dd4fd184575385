"""The flags of ``preau loadtest``, their hard limits, and the loopback rule.

Everything here is checked before a single connection is opened: an option out of
bounds, or a target that is not this machine (without ``--allow-remote``), raises
:class:`~server.errors.ConfigurationError`, which ``preau`` reports with exit status 2.
This module imports only the standard library and :mod:`server.errors`, because
``preau``'s parser imports it for every subcommand.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from server.errors import ConfigurationError

__all__ = [
    "DEFAULT_URL",
    "MAX_CONNECTIONS",
    "MAX_DRAIN",
    "MAX_DURATION",
    "MAX_RAMP",
    "MAX_RATE",
    "MAX_RECIPIENTS",
    "MAX_THREAD_RATE",
    "MAX_TOTAL_RATE",
    "MAX_URLS",
    "Options",
    "add_arguments",
    "check_target",
    "is_loopback",
    "options_from_args",
]

DEFAULT_URL = "http://127.0.0.1:8000"

# Hard caps: a load tester is a weapon pointed at a server, so whatever the flags say,
# a run opens a bounded number of sockets, sends at a bounded rate, and ends by itself.
MAX_CONNECTIONS = 5000
MAX_DURATION = 600.0
MAX_RATE = 50.0           # messages/s in one class discussion
MAX_THREAD_RATE = 10.0    # messages/s in one parent–teacher thread
MAX_TOTAL_RATE = 1000.0   # messages/s over the whole run
MAX_RAMP = 1000.0         # new connections/s
MAX_URLS = 16
MAX_DRAIN = 60.0
MAX_CLASSES = 1000
MAX_THREADS_PER_CLASS = 20
# `start` takes at most 50 recipients (protocol.md §5.3); the teacher is the 51st.
MAX_RECIPIENTS = 50
MIN_BODY, MAX_BODY = 48, 4000  # the body carries a ~40-character tag (see engine.py)


@dataclass(frozen=True, slots=True)
class Options:
    """A validated load test: every field is within the limits above."""

    urls: tuple[str, ...]
    classes: int
    students: int | None          # per class discussion; None: the whole class (≤ 50)
    threads: int                  # parent–teacher threads per class
    rate: float                   # messages/s per class discussion
    thread_rate: float            # messages/s per thread
    duration: float               # seconds of sending
    warmup: float                 # first seconds of sending left out of the steady figures
    ramp: float                   # connections opened per second
    storm_at: float | None        # seconds into the sending phase
    storm_fraction: float
    drain: float                  # seconds to wait for the last deliveries
    settle: bool                  # wait for every member to hold message 1 before sending
    body_size: int
    encoding: Literal["msgpack", "json"]
    seed: int
    school: str | None
    directory: Path | None
    database: str | None
    secret: str | None
    demo_api: bool
    json: bool
    report: Path | None
    loop: str                     # "auto", "uvloop" or "asyncio"
    progress: bool

    @property
    def total_rate(self) -> float:
        """The planned messages/s of the whole run (before refusals)."""
        return self.classes * self.rate + self.classes * self.threads * self.thread_rate


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare ``preau loadtest``'s flags on ``p``.

    Flag names avoid ``--host``, ``--port`` and ``--demo``: ``preau`` reads those as
    server settings for every subcommand.
    """
    p.description = ("Simulate classrooms (a teacher and her students in a class "
                     "discussion) and parent–teacher threads against running Préau "
                     "servers, then report throughput, end-to-end latency, losses and "
                     "duplicates. See docs/loadtest.md.")
    target = p.add_argument_group("target")
    target.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help=f"a server's base URL, repeat for several nodes (clients are "
                             f"spread round-robin; default {DEFAULT_URL})")
    target.add_argument("--allow-remote", action="store_true",
                        help="allow targets that are not loopback addresses")
    users = p.add_argument_group("users and tokens")
    users.add_argument("--directory", type=Path, metavar="FILE",
                       help="the school's directory file (e.g. the output of "
                            "`preau demo-school`), as imported into the server")
    users.add_argument("--database", metavar="URL",
                       help="the server's database (sqlite:///var/preau.db): its users, "
                            "and in demo mode the secret it keeps")
    users.add_argument("--school", metavar="ID",
                       help="load an existing school (default: the directory's; with "
                            "--database, a school of the load test's own, 'loadtest', "
                            "imported into the database, never the demo's)")
    users.add_argument("--secret", help="the servers' JWT secret, to sign tokens "
                                        "(default: PREAU_JWT_SECRET)")
    users.add_argument("--demo-api", action="store_true",
                       help="demo-mode servers: read users from GET /api/demo/users and "
                            "get tokens from POST /api/demo/token")
    load = p.add_argument_group("load")
    load.add_argument("--classes", metavar="N", type=_int(1, MAX_CLASSES), default=5,
                      help="class discussions (one per class; default 5)")
    load.add_argument("--students", metavar="N", type=_int(1, MAX_RECIPIENTS), default=None,
                      help="students per class discussion (default: the whole class, "
                           f"at most {MAX_RECIPIENTS})")
    load.add_argument("--threads", metavar="N", type=_int(0, MAX_THREADS_PER_CLASS), default=2,
                      help="parent–teacher threads per class (default 2)")
    load.add_argument("--rate", metavar="R", type=_float(0.01, MAX_RATE), default=1.0,
                      help="messages/s per class discussion, spread across its members "
                           "(default 1)")
    load.add_argument("--thread-rate", metavar="R", type=_float(0.0, MAX_THREAD_RATE), default=0.2,
                      help="messages/s per parent–teacher thread (default 0.2)")
    load.add_argument("--duration", metavar="SECONDS", type=_float(1.0, MAX_DURATION), default=30.0,
                      help=f"seconds of sending (default 30, at most {MAX_DURATION:g})")
    load.add_argument("--warmup", metavar="SECONDS", type=_float(0.0, MAX_DURATION), default=None,
                      help="the first seconds of sending, whose messages count in the "
                           "whole-run latency but not in the steady one (default: a "
                           "quarter of --duration, at most 5)")
    load.add_argument("--ramp", metavar="R", type=_float(1.0, MAX_RAMP), default=100.0,
                      help="connections opened per second (default 100)")
    load.add_argument("--size", dest="body_size", metavar="CHARS",
                      type=_int(MIN_BODY, MAX_BODY), default=100,
                      help="message body length in characters (default 100)")
    load.add_argument("--encoding", choices=("msgpack", "json"), default="msgpack",
                      help="WebSocket subprotocol (default msgpack)")
    load.add_argument("--storm-at", type=_float(0.1, MAX_DURATION), metavar="SECONDS",
                      help="drop connections at once this long into the sending phase")
    load.add_argument("--storm-fraction", metavar="F", type=_float(0.001, 1.0), default=0.3,
                      help="share of the connections the storm drops (default 0.3)")
    load.add_argument("--drain", metavar="SECONDS", type=_float(1.0, MAX_DRAIN), default=10.0,
                      help="seconds to wait for late deliveries after sending stops "
                           "(default 10)")
    load.add_argument("--no-settle", action="store_true",
                      help="send as soon as the discussions are started, without waiting "
                           "for every member to have received them")
    load.add_argument("--seed", metavar="N", type=int, default=1, help="random seed (default 1)")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print the summary as JSON on stdout instead of text")
    out.add_argument("--report", type=Path, metavar="FILE.html",
                     help="write a self-contained HTML report with latency charts")
    out.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    out.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                     help="event loop (default: uvloop when installed)")


def options_from_args(args: argparse.Namespace, *, secret: str | None) -> Options:
    """Validate parsed arguments into :class:`Options`, or raise ConfigurationError.

    ``secret`` is the JWT secret from ``--secret`` or the environment, if any.
    Each URL is checked with :func:`check_target` (``--allow-remote`` lifts it).
    """
    urls = tuple(args.urls or [DEFAULT_URL])
    if len(urls) > MAX_URLS:
        raise ConfigurationError(f"at most {MAX_URLS} --url, not {len(urls)}")
    for url in urls:
        check_target(url, allow_remote=args.allow_remote)
    if args.storm_at is not None and args.storm_at >= args.duration:
        raise ConfigurationError(f"--storm-at {args.storm_at:g} must fall within the "
                                 f"--duration of {args.duration:g} s")
    warmup = min(5.0, args.duration / 4) if args.warmup is None else args.warmup
    if warmup >= args.duration:
        raise ConfigurationError(f"--warmup {warmup:g} must be shorter than the "
                                 f"--duration of {args.duration:g} s")
    report: Path | None = args.report
    if report is not None and report.suffix.lower() not in (".html", ".htm"):
        raise ConfigurationError(f"--report writes HTML: name it *.html, not {report}")
    options = Options(
        urls=urls, classes=args.classes, students=args.students, threads=args.threads,
        rate=args.rate, thread_rate=args.thread_rate, duration=args.duration, warmup=warmup,
        ramp=args.ramp, storm_at=args.storm_at, storm_fraction=args.storm_fraction,
        drain=args.drain, settle=not args.no_settle, body_size=args.body_size,
        encoding="json" if args.encoding == "json" else "msgpack",
        seed=args.seed, school=args.school, directory=args.directory,
        database=args.database, secret=secret, demo_api=args.demo_api, json=args.json,
        report=report, loop=args.loop, progress=not args.quiet)
    if options.total_rate > MAX_TOTAL_RATE:
        raise ConfigurationError(
            f"{options.total_rate:g} messages/s in all is above the limit of "
            f"{MAX_TOTAL_RATE:g}: lower --classes, --rate, --threads or --thread-rate")
    return options


def check_target(url: str, *, allow_remote: bool) -> None:
    """Raise ConfigurationError unless ``url`` is a usable URL on a loopback host.

    Loopback means ``localhost`` or an address in 127.0.0.0/8 or ``::1`` (also
    IPv4-mapped). The check reads the URL only: no name is resolved and nothing is
    contacted, so a refused target never sees a packet. ``allow_remote`` accepts
    any host.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ConfigurationError(
            f"invalid URL {url!r}: expected http://HOST:PORT (or ws://, https://, wss://)")
    if not allow_remote and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing to load-test {url}: {parts.hostname} is not a loopback address "
            "(localhost, 127.0.0.0/8, ::1). Pass --allow-remote only for a server you "
            "operate and that expects this load.")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; false for any other name."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        # A name other than localhost might resolve anywhere: resolving it here would
        # already be a query about the target, and its answer can change later.
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, "
                                             f"not {text}")
        return value

    return parse
