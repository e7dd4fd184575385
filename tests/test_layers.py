"""Layering guards: the policy layer never loads I/O or web libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("starlette", "uvicorn", "redis", "aiosqlite", "sqlite3", "asyncio", "websockets",
             "msgpack", "jwt")


@pytest.mark.parametrize("module", ["server.gatekeeper", "server.settings", "server.model",
                                    "server.directory", "server.demo", "server.errors"])
def test_policy_modules_do_no_io(module: str):
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_store_does_not_import_the_web_layer():
    code = ("import sys, server.store; "
            "print(','.join(m for m in ('starlette', 'uvicorn', 'server.web', 'server.schools')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_protocol_is_sans_io():
    code = ("import sys, server.protocol; "
            "print(','.join(m for m in ('asyncio', 'starlette', 'uvicorn', 'redis', 'aiosqlite',"
            " 'websockets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("module", ["server.node", "server.session", "server.hub"])
def test_the_hub_does_not_know_the_web_framework(module: str):
    code = (f"import sys, {module}; "
            "print(','.join(m for m in ('starlette', 'uvicorn', 'server.web')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""
