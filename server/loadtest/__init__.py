"""``preau loadtest``: simulate a school's classrooms against running Préau servers.

Classrooms (a teacher and her students) and small parent–teacher threads connect
through :mod:`server.client`, exchange messages at fixed rates for a fixed duration,
optionally survive a reconnect storm, and the run reports connections, throughput,
end-to-end latency, losses, duplicates and refusals (``docs/loadtest.md``).

This package is imported by ``preau``'s argument parser, so this module and
:mod:`.options` import nothing heavy; the engine is imported by :func:`run` only.

Modules: :mod:`.options` (flags, limits, the loopback check), :mod:`.plan` (who talks
to whom, from a school directory), :mod:`.stats` (counters and latency histograms),
:mod:`.engine` (the asyncio run), :mod:`.report` (text, JSON and HTML summaries),
:mod:`.runner` (tokens, directory, event loop: what ``run`` does).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .options import add_arguments

if TYPE_CHECKING:
    from server.config import Config

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace, config: Config) -> int:
    """Run a load test from parsed ``preau loadtest`` arguments; return the exit status.

    0: the run completed without loss or duplicate; 1: it found losses, duplicates or
    delivered nothing, or could not run (servers unreachable, tokens refused).
    Invalid or unsafe options raise :class:`~server.errors.ConfigurationError`
    (``preau`` prints it and exits with 2) before any connection is opened.
    """
    from .runner import run_cli

    return run_cli(args, config)
