"""Layering guards.

1. The order of ``server`` modules, read from their imports: every module belongs to
   one layer of :data:`LAYERS` and imports only modules of its own layer or below,
   counting every import (module level, inside functions, under ``TYPE_CHECKING``),
   and no ``server`` modules import each other in a circle.
2. Each lower layer loads none of the third-party I/O libraries of the layers above it
   (checked by importing it in a fresh interpreter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"

# Bottom to top. A name stands for the module and, for a package, everything in it
# (except ``server`` itself: its ``__init__`` only, with the version).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("server", "server.errors", "server.model", "server.clock", "server.limits")),
    ("policy", ("server.gatekeeper", "server.settings", "server.directory", "server.demo",
                "server.relations",
                "server.broadcasts", "server.auditwords")),
    ("protocol", ("server.protocol", "server.frames", "server.events", "server.tokens",
                  "server.config", "server.identity_file", "server.host_tokens")),
    ("storage", ("server.store",)),
    ("broker", ("server.broker",)),
    ("hub", ("server.hub", "server.feed", "server.schools", "server.jwks",
             "server.contacts")),
    ("node parts", ("server.summaries", "server.audience", "server.held", "server.sessions",
                    "server.revocation",
                    "server.noticeboard", "server.conversations", "server.activity",
                    "server.search", "server.posting")),
    ("node", ("server.node",)),
    ("session", ("server.session",)),
    ("app", ("server.web", "server.headers", "server.handshake", "server.session_routes",
             "server.signin", "server.mysettings", "server.rest", "server.routes_me",
             "server.routes_preferences", "server.routes_admin", "server.routes_broadcasts")),
    ("cli", ("server.cli", "server.__main__", "server.loadtest", "server.client",
             "server.session_client")),
]


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """``server/store/sqlite.py`` → ``("server.store.sqlite", False)``; a package's
    ``__init__.py`` names the package (``True``: relative imports start from it)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def read_sources(root: Path = SERVER) -> dict[str, tuple[str, bool]]:
    """Every module under ``root``: name → (source, is a package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name, package = module_name(path, root)
        out[name] = (path.read_text(encoding="utf-8"), package)
    return out


def imported(name: str, source: str, package: bool, known: set[str]) -> Iterator[str]:
    """The ``server`` modules that ``source`` imports, wherever the import is."""
    here = name if package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from . import frames`` imports a module; ``from .x import Y``, a name of x.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target == "server" or target.startswith("server."):
                yield target


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the longest name that covers ``module``."""
    best: tuple[int, int] | None = None  # (length of the name, layer)
    for index, (_, names) in enumerate(LAYERS):
        for n in names:
            covers = module == n or (n != "server" and module.startswith(n + "."))
            if covers and (best is None or len(n) > best[0]):
                best = (len(n), index)
    return None if best is None else best[1]


def graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    known = set(sources)
    return {name: set(imported(name, src, pkg, known)) - {name}
            for name, (src, pkg) in sources.items()}


def violations(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Every import of a higher layer, and every module in no layer, as sentences."""
    found = []
    for module, targets in sorted(graph(sources).items()):
        mine = layer_of(module)
        if mine is None:
            found.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is None or theirs > mine:
                found.append(f"{module} ({LAYERS[mine][0]}) imports {target} "
                             f"({'no layer' if theirs is None else LAYERS[theirs][0]})")
    return found


def cycles(sources: Mapping[str, tuple[str, bool]]) -> list[list[str]]:
    """The import circles among the modules (one path each), by depth-first search."""
    edges = graph(sources)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def test_every_module_imports_only_its_layer_or_below():
    sources = read_sources()
    assert {"server.node", "server.store.base", "server.gatekeeper"} <= set(sources)
    assert violations(sources) == []


def test_no_import_cycle_among_server_modules():
    assert cycles(read_sources()) == []


def test_the_order_guard_can_fail():
    sources = read_sources()
    # An import of the node from the noticeboard, hidden in a function and under
    # TYPE_CHECKING, and a module that belongs to no layer.
    sources["server.noticeboard"] = (sources["server.noticeboard"][0] + (
        "\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .node import Node\n"
        "def later():\n    from . import session\n"), False)
    sources["server.store.base"] = (sources["server.store.base"][0]
                                    + "\nfrom ..hub import Frame\n", False)
    sources["server.newcomer"] = ("import server.errors\n", False)
    assert violations(sources) == [
        "server.newcomer is in no layer: add it to LAYERS",
        "server.noticeboard (node parts) imports server.node (node)",
        "server.noticeboard (node parts) imports server.session (session)",
        "server.store.base (storage) imports server.hub (hub)",
    ]


def test_the_cycle_guard_can_fail():
    sources = {"server.a": ("from . import b\n", False),
               "server.b": ("def f():\n    import server.c\n", False),
               "server.c": ("from server.a import thing\n", False),
               "server.d": ("from . import a\n", False)}
    assert cycles(sources) == [["server.a", "server.b", "server.c", "server.a"]]


# ---------------------------------------------------------------------- libraries

IO = ("starlette", "uvicorn", "redis", "aiosqlite", "sqlite3", "asyncio", "websockets",
      "msgpack", "jwt", "asyncpg")
WEB = ("starlette", "uvicorn", "server.web")

RULES = [
    *((m, IO) for m in ("server.gatekeeper", "server.settings", "server.model",
                        "server.directory", "server.demo", "server.errors",
                        "server.broadcasts", "server.limits", "server.frames",
                        "server.events")),
    ("server.protocol", ("asyncio", "starlette", "uvicorn", "redis", "aiosqlite", "websockets",
                         "asyncpg")),
    ("server.store", (*WEB, "server.schools")),
    *((m, WEB) for m in ("server.node", "server.session", "server.hub", "server.noticeboard",
                         "server.feed", "server.audience", "server.held", "server.summaries",
                         "server.conversations", "server.activity", "server.posting")),
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


def test_the_library_guard_can_fail():
    assert loaded("server.web", WEB) == ["starlette", "server.web"]  # the one Starlette user
