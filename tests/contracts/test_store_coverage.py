"""The store contract suite keeps up with the contract: every method of every role
protocol (server/store/contract.py) is called in that role's contract test file, so a
method added to a protocol without a behaviour on both stores fails here."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from server.store import PostgresStore, SqliteStore, contract
from server.store.contract import (
    BroadcastStore,
    DirectoryStore,
    DiscussionStore,
    HeldStore,
    MessageStore,
    SearchStore,
    SessionStore,
    SigninStore,
    Store,
)

HERE = Path(__file__).resolve().parent

ROLE_FILES: dict[type, str] = {
    DirectoryStore: "test_store_directory.py",
    DiscussionStore: "test_store_discussions.py",
    MessageStore: "test_store_messages.py",
    BroadcastStore: "test_store_broadcasts.py",
    HeldStore: "test_store_held.py",
    SessionStore: "test_store_sessions.py",
    SigninStore: "test_store_signin.py",
    SearchStore: "test_store_search.py",
    Store: "test_store_lifecycle.py",  # its own methods only: open, close, write_failure
}


def own_methods(protocol: type) -> set[str]:
    """The methods ``protocol`` declares itself (not those of the roles it unites)."""
    return {name for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


def called_methods(path: Path) -> set[str]:
    """Names of the methods called in ``path`` (``x.name(...)``); ``open_store(url)``
    counts as calling ``open``, which it does on the store it returns."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
            elif isinstance(node.func, ast.Name) and node.func.id == "open_store":
                names.add("open")
    return names


def test_every_protocol_of_the_contract_has_its_test_file() -> None:
    protocols = {value for value in vars(contract).values()
                 if inspect.isclass(value) and getattr(value, "_is_protocol", False)
                 and value.__module__ == contract.__name__}
    assert protocols == set(ROLE_FILES)


def test_the_store_is_the_union_of_its_roles() -> None:
    roles = set().union(*(own_methods(p) for p in ROLE_FILES if p is not Store))
    every = {name for name, value in inspect.getmembers(Store, inspect.isfunction)
             if not name.startswith("_")}
    assert every == roles | own_methods(Store)
    assert own_methods(Store) == {"open", "close", "write_failure"}


@pytest.mark.parametrize("protocol", list(ROLE_FILES), ids=lambda p: p.__name__)
def test_every_method_has_a_contract_test(protocol: type) -> None:
    path = HERE / ROLE_FILES[protocol]
    missing = sorted(own_methods(protocol) - called_methods(path))
    assert not missing, f"{path.name} has no test calling {', '.join(missing)}"


# Fixtures parametrised over both stores (tests/contracts/conftest.py, and the error
# tests' ``faulty``): a contract test asks for one of them, so it runs on both.
BOTH_STORES = {"store", "schools", "store_url", "store_kind", "open_more", "faulty"}


@pytest.mark.parametrize("name", sorted({*ROLE_FILES.values(), "test_store_errors.py"}))
def test_every_contract_test_runs_on_both_stores(name: str) -> None:
    tree = ast.parse((HERE / name).read_text(encoding="utf-8"))
    one_store_only = [
        node.name for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not BOTH_STORES & {a.arg for a in node.args.args}]
    assert not one_store_only, f"{name}: {', '.join(one_store_only)} run on one store only"


def test_no_store_test_skips() -> None:
    """A store that cannot be reached fails the suite, with the command that starts it."""
    for path in sorted(HERE.glob("*store*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skips = [node.lineno for node in ast.walk(tree)
                 if isinstance(node, ast.Attribute) and node.attr in {"skip", "skipif",
                                                                      "importorskip", "xfail"}]
        assert not skips, f"{path.name} skips at lines {skips}"


def both_are_stores(sqlite: SqliteStore, postgres: PostgresStore) -> tuple[Store, Store]:
    """mypy checks here that both implementations have every method of every role, with
    the contract's signatures (``open_store`` may cast; this does not)."""
    return sqlite, postgres


def test_both_implementations_have_every_method() -> None:
    for implementation in (SqliteStore, PostgresStore):
        missing = sorted(name for name in dir(Store) if not name.startswith("_")
                         and not callable(getattr(implementation, name, None)))
        assert not missing, f"{implementation.__name__} lacks {', '.join(missing)}"
