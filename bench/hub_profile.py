"""Summarise a py-spy raw profile of a node (``bench.hub --profile DIR``).

Usage: ``.venv/bin/python -m bench.hub_profile DIR/hub-fixed.txt [--per N] [--top K]``

The input is py-spy's ``--format raw --threads`` output: one collapsed stack per
line (``thread (0x…);outer (file:line);…;leaf (file:line) COUNT``). Printed, per
thread: samples; then for the busiest thread (the event loop) the functions by
inclusive and by self samples, as a share of that thread's samples and, with
``--per N`` (deliveries or messages in the profiled window), in µs per unit at the
sampling rate given by ``--rate``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    threads: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        if frames[0].startswith("process"):
            frames = frames[1:]
            thread = frames[0] if frames and frames[0].startswith("thread") else thread
        if frames and frames[0].startswith("thread"):
            frames = frames[1:]
        threads.setdefault(thread, []).append(([_name(f) for f in frames], int(count)))
    return threads


# Self time grouped by what the leaf frame belongs to (first match wins).
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("uvicorn WebSocket send (incl. the write syscall) + websockets framing",
     ("websockets_sansio_impl.py", "websockets/")),
    ("Starlette + ASGI send layers (server/web.py transport, starlette)",
     ("starlette/", "server/web.py", "uvicorn/middleware")),
    ("per-connection Outbox + asyncio.Event wake-ups (server/hub.py Outbox, asyncio locks)",
     ("Outbox.", "asyncio/locks.py", "asyncio/mixins.py")),
    ("fan-out (the feed's deliver, Session.deliver/push, Frame)",
     ("_new_feed.<locals>.deliver", "server/feed.py", "Session.deliver", "Session.push",
      "Frame.data", "Audience.offer", "message (", "iso (", "Frame.__init__")),
    ("request path (decode, parse, session, gatekeeper, node.send, store/appender calls, broker)",
     ("server/protocol.py", "server/session.py", "server/gatekeeper", "Conversations.send",
      "server/store", "server/broker", "Node._publish", "quietly", "message_event",
      "Audience.members", "Node.establishment", "server/clock.py", "concurrent/futures",
      "asyncio/futures.py", "asyncio/queues.py", "<string>", "msgpack", "json/")),
    ("event loop itself (uvloop C code, task steps, epoll, socket reads: Runner.run self)",
     ("Runner.run",)),
]


def categorise(rows: list[tuple[list[str], int]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for frames, c in rows:
        leaf = frames[-1] if frames else ""
        for name, needles in CATEGORIES:
            if any(n in leaf for n in needles):
                out[name] += c
                break
        else:
            out["other: " + leaf] += c
    return out


def summarise(path: Path, top: int, per: float | None, rate: float) -> str:
    threads = load(path)
    totals = {t: sum(c for _, c in rows) for t, rows in threads.items()}
    out = [f"{path}: {sum(totals.values())} samples"]
    for t, n in sorted(totals.items(), key=lambda kv: -kv[1]):
        out.append(f"  {t}: {n} samples ({n / rate:.1f} s busy)")
    main = max(totals, key=lambda t: totals[t])
    rows = threads[main]
    n = totals[main]
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    for frames, c in rows:
        for f in set(frames):
            inclusive[f] += c
        if frames:
            self_[frames[-1]] += c

    def fmt(counter: Counter[str]) -> list[str]:
        lines = []
        for f, c in counter.most_common(top):
            extra = f"  {c / rate / per * 1e6:7.1f} µs/unit" if per else ""
            lines.append(f"  {100 * c / n:5.1f} %{extra}  {f}")
        return lines

    cats = categorise(rows)
    other = sum(c for k, c in cats.items() if k.startswith("other: "))
    grouped = Counter({k: c for k, c in cats.items() if not k.startswith("other: ")})
    grouped["everything else"] = other
    out += ["", f"busiest thread {main}: self time by category", *fmt(grouped),
            "", f"inclusive (share of its {n} samples)", *fmt(inclusive),
            "", "self (leaf frames)", *fmt(self_)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--per", type=float, help="units (e.g. deliveries) in the profiled window")
    p.add_argument("--rate", type=float, default=200.0, help="py-spy sampling rate (Hz)")
    args = p.parse_args()
    print(summarise(args.profile, args.top, args.per, args.rate))


if __name__ == "__main__":
    main()
