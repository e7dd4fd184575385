"""Préau in the peer harness (/work/shared/bench-peers): client adapter and server start.

The peer harness is shared read-only and is not part of this repository. To put
Préau beside the peers, work on a copy of it (see bench/peers/README.md)::

    d=$(mktemp -d) && cp -r /work/shared/bench-peers "$d" && chmod -R u+w "$d"
    .venv/bin/python bench/peers/preau_adapter.py install "$d/bench-peers"
    cd "$d/bench-peers" && SERVERS="c d p" MODES=max REPS=1 ./run_all.sh

``install`` copies this file into the copy, registers the adapter in its
``load.py`` (two lines after ``ADAPTERS``) and adds one line to its
``servers.conf``::

    p|preau|8105|preau|<repo>/.venv/bin/python preau_adapter.py serve --root <repo> --port {PORT}

Server side (``serve``, run by ``run_all.sh`` from the harness folder, with
``REDIS_URL`` of the harness's private Redis in the environment): builds the
classroom school of ``bench/hub.py`` (ROOMS × SIZE from the environment, default
20 × 26: room r has teacher ``t000r`` and 25 students), imports it into a fresh
SQLite file under ``results/preau/``, creates each room's discussion in the store
(teacher + students, one first message), writes ``results/preau/clients.json``
(per room: the discussion, its last seq, and one token per member, teacher first),
then ``exec``s ``python -m server serve`` (same PID, as the harness requires) with
the Redis broker, persistence and the gatekeeper on, and ``PREAU_RATE_LIMIT=10000``.

Client side (the ``preau`` adapter, run by ``load.py`` in the harness's own venv:
needs only ``msgpack``): ``open(room)`` connects to ``/ws`` offering
``preau.msgpack`` (the harness's ``RawWs`` with that header), sends ``hello`` with
the next member's token of that room (the harness opens members in order, so the
first one of each room, the sender, is the teacher) and ``resume`` at the
discussion's current position, and waits for ``welcome``. ``send(msg)`` sends the
harness's ~92-byte JSON payload as the ``body`` of a ``send`` (a fresh
``client_id`` each time); every ``message`` event's ``body`` is parsed back and
handed to the harness. ``ack`` frames are dropped; ``error`` frames are printed
(the first 20) to the load log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

NAME = "preau"
KEY = "p"
PORT = 8105
CLIENTS = Path("results/preau/clients.json")  # relative to the harness folder
HERE = Path(__file__).resolve()


# ---------------------------------------------------------------------- client side


def register(ns: dict[str, Any]) -> None:
    """Define the adapter on load.py's own classes and add it to its ``ADAPTERS``."""
    import msgpack

    adapter_base, conn_base, raw_ws = ns["Adapter"], ns["Conn"], ns["RawWs"]
    dumps, loads = ns["dumps"], ns["loads"]
    pack = msgpack.Packer(use_bin_type=True).pack
    unpack = msgpack.unpackb
    reported = [0]

    async def connect(url: str, limit_s: float = 10.0) -> Any:
        """RawWs.connect, offering the ``preau.msgpack`` subprotocol."""
        from urllib.parse import urlsplit

        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(raw_ws, host, port)
        proto.key = base64.b64encode(os.urandom(16))
        proto.handshake_fut = loop.create_future()
        proto.transport.write(
            (f"GET {u.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {proto.key.decode()}\r\n"
             f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: preau.msgpack\r\n"
             f"Origin: http://{host}:{port}\r\n\r\n").encode())
        try:
            await asyncio.wait_for(proto.handshake_fut, limit_s)
        except BaseException:
            proto.transport.abort()
            raise
        return proto

    class PreauConn(conn_base):  # type: ignore[misc,valid-type]
        __slots__ = ("discussion", "n", "ws")

        def __init__(self, ws: Any, discussion: int) -> None:
            self.ws, self.discussion, self.n = ws, discussion, 0

        async def send(self, msg: dict[str, Any]) -> None:
            self.n += 1
            self.ws._send_frame(0x2, pack({
                "type": "send", "discussion": self.discussion,
                "body": dumps(msg, separators=(",", ":")), "client_id": str(self.n)}))

        async def close(self) -> None:
            await self.ws.close()

    class PreauAdapter(adapter_base):  # type: ignore[misc,valid-type]
        """Préau's protocol (docs/protocol.md), ``preau.msgpack``, one discussion per room."""

        name = NAME

        def __init__(self, base: str, session: Any) -> None:
            super().__init__(base, session)
            self.rooms = json.loads(CLIENTS.read_text())["rooms"]
            self.next: defaultdict[int, int] = defaultdict(int)

        async def open(self, room: str, on_msg: Any) -> Any:
            r = int(room.lstrip("abcdefghijklmnopqrstuvwxyz_-"))
            i = self.next[r]  # taken before any await: members are opened in order
            self.next[r] += 1
            info = self.rooms[r]
            if i >= len(info["tokens"]):
                raise RuntimeError(f"room {r} has only {len(info['tokens'])} members: "
                                   "start the server with the same ROOMS and SIZE")
            d = info["discussion"]
            ws = await connect(f"{self.ws_base}/ws")
            try:
                ws._send_frame(0x2, pack({"type": "hello", "token": info["tokens"][i],
                                          "resume": [[d, info["last_seq"]]]}))
                first = unpack(await ws.recv())
                if first.get("type") != "welcome":
                    raise RuntimeError(f"expected welcome, got {first!r}"[:300])
            except BaseException:
                ws.transport.abort()
                raise

            def on_text(b: bytes) -> None:
                f = unpack(b)
                kind = f.get("type")
                if kind == "message":
                    on_msg(loads(f["body"]))
                elif kind == "error" and reported[0] < 20:
                    reported[0] += 1
                    print(f"[preau] room {r} member {i}: {f}", file=sys.stderr, flush=True)

            ws.on_text = on_text
            while not ws.queue.empty():
                p = ws.queue.get_nowait()
                if p is not None:
                    on_text(p)
            return PreauConn(ws, d)

    ns["ADAPTERS"][NAME] = PreauAdapter


# ---------------------------------------------------------------------- server side


def serve(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    from datetime import timedelta

    from bench.hub import DAY, SCHOOL, SECRET, classroom_school, member_id, prepare_db
    from server.model import UserId
    from server.store import SqliteStore
    from server.tokens import issue_token

    rooms = int(os.environ.get("ROOMS") or 20)
    size = int(os.environ.get("SIZE") or 26)
    out = CLIENTS.parent
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db = out / "preau.db"
    prepare_db(f"sqlite:///{db}", classroom_school(rooms, size))

    async def discussions() -> list[dict[str, Any]]:
        st = SqliteStore(str(db))
        await st.open()
        try:
            made = []
            for r in range(rooms):
                users = [UserId(member_id(r, i)) for i in range(size)]
                members = await st.create_discussion(SCHOOL, users[0], f"Salle {r}", users[1:],
                                                     now=DAY)
                msg, _ = await st.append_message(SCHOOL, members.id, users[0], "start",
                                                 "Bonjour à tous", now=DAY)
                made.append({"discussion": int(members.id), "last_seq": msg.seq,
                             "users": users,
                             "tokens": [issue_token(SECRET, SCHOOL, u, ttl=timedelta(days=1),
                                                    now=DAY) for u in users]})
            return made
        finally:
            await st.close()

    made = asyncio.run(discussions())
    CLIENTS.write_text(json.dumps({"rooms": made}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
    env.update({
        "PREAU_DATABASE_URL": f"sqlite:///{db.resolve()}",
        "PREAU_JWT_SECRET": SECRET,
        "PREAU_CLOCK_START": DAY.isoformat().replace("+00:00", "Z"),
        "PREAU_RATE_LIMIT": "10000",
        "PREAU_NODE_ID": "peer-bench",
        "PYTHONPATH": str(root),
    })
    print(f"[preau] {rooms} rooms x {size}, database {db}, redis {env.get('REDIS_URL')}",
          file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "server", "serve", "--port",
                               str(args.port)], env)


# ---------------------------------------------------------------------- install


def install(args: argparse.Namespace) -> None:
    harness = Path(args.harness).resolve()
    root = HERE.parents[2]
    load, conf = harness / "load.py", harness / "servers.conf"
    shutil.copy(HERE, harness / HERE.name)
    text = load.read_text()
    anchor = "    for a in (JsonWsAdapter, SocketIOAdapter, JsonWsAiohttpAdapter, " \
             "SocketIOOfficialAdapter)\n}\n"
    hook = ("import preau_adapter as _preau  # noqa: E402  (Préau: preau_adapter.py install)\n"
            "_preau.register(globals())\n")
    if hook not in text:
        if anchor not in text:
            raise SystemExit(f"{load}: cannot find the ADAPTERS registry")
        load.write_text(text.replace(anchor, anchor + hook, 1))
    line = (f"{KEY}|{NAME}|{PORT}|{NAME}|{root}/.venv/bin/python preau_adapter.py serve "
            f"--root {root} --port {{PORT}}\n")
    lines = [ln for ln in conf.read_text().splitlines(keepends=True)
             if not ln.startswith(f"{KEY}|")]
    conf.write_text("".join(lines).rstrip("\n") + "\n" + line)
    print(f"installed into {harness}:\n  servers.conf: {line.strip()}\n"
          f"  load.py: {hook.splitlines()[0]} / {hook.splitlines()[1]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("serve", help="build the school, then exec the Préau node")
    s.add_argument("--root", required=True, help="the Préau repository")
    s.add_argument("--port", type=int, required=True)
    s.set_defaults(run=serve)
    i = sub.add_parser("install", help="add Préau to a writable copy of the harness")
    i.add_argument("harness", help="the copy's folder (with load.py and servers.conf)")
    i.set_defaults(run=install)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
