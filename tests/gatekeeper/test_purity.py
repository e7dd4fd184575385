"""The gatekeeper is pure (no I/O framework imported) and every module curates ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

MODULES = [
    "server.gatekeeper",
    "server.gatekeeper.broadcast",
    "server.gatekeeper.decision",
    "server.gatekeeper.gatekeeper",
    "server.gatekeeper.hours",
    "server.gatekeeper.index",
    "server.gatekeeper.rules",
]

FORBIDDEN = [
    "asyncio",
    "starlette",
    "redis",
    "aiosqlite",
    "sqlite3",
    "uvicorn",
    "asyncpg",
    "socket",
]


def test_importing_the_gatekeeper_loads_no_io_framework() -> None:
    code = (
        "import sys, server.gatekeeper\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("name", MODULES)
def test_all_is_complete(name: str) -> None:
    # ruff (RUF022) keeps __all__ sorted; this checks it names real, public things.
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), symbol
    public = {
        n
        for n, value in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    assert public <= set(exported)
