"""Layering guards: each layer loads none of the libraries of the layers above it."""

from __future__ import annotations

import subprocess
import sys

import pytest

IO = ("starlette", "uvicorn", "redis", "aiosqlite", "sqlite3", "asyncio", "websockets",
      "msgpack", "jwt")
WEB = ("starlette", "uvicorn", "server.web")

RULES = [
    *((m, IO) for m in ("server.gatekeeper", "server.settings", "server.model",
                        "server.directory", "server.demo", "server.errors",
                        "server.broadcasts")),
    ("server.protocol", ("asyncio", "starlette", "uvicorn", "redis", "aiosqlite", "websockets")),
    ("server.store", (*WEB, "server.schools")),
    *((m, WEB) for m in ("server.node", "server.session", "server.hub", "server.noticeboard",
                                     "server.feed")),
]


def loaded(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` importing ``module`` pulls in (in a fresh interpreter)."""
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {candidates!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize(("module", "forbidden"), RULES)
def test_layer_does_not_load_what_is_above_it(module: str, forbidden: tuple[str, ...]):
    assert loaded(module, forbidden) == [], f"{module} imports {loaded(module, forbidden)}"


def test_the_guard_can_fail():
    assert loaded("server.web", WEB) == ["starlette", "server.web"]  # the one Starlette user
