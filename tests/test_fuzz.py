"""Fuzzing the wire: random mixes of valid and hostile frames, under both subprotocols.

A ``preau serve`` process (with a private Redis) serves a small school; several
users, each on its own connection, send batches of frames drawn from a seeded
``random.Random``: valid requests (``send``, ``start``, ``read``, ``typing``,
``list``, ``history``, ``invite``, ``ping``) mixed with lone surrogates, NUL
characters, huge, negative, float and boolean numbers, deep nesting, wrong types,
unknown types, oversized fields and undecodable bytes. Each batch ends with a
``ping``; as a connection's requests are answered in order, its ``pong`` means
every request before it has been answered. Afterwards:

- no connection was ever closed (1011 above all), nor refused;
- every request that carried a usable ``ref`` got exactly one answer with it, and
  every frame without one that had to be refused got its ``error`` all the same;
- the server's log holds no exception;
- ``/readyz`` counts as many connections as before the clients came.

``PREAU_FUZZ_FRAMES`` sets the number of frames (20,000 by default, ``make fuzz``
runs 100,000) and ``PREAU_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from tests.cluster import Cluster
from tests.redis_server import RedisServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

FRAMES = int(os.environ.get("PREAU_FUZZ_FRAMES", "20000"))
SEED = int(os.environ.get("PREAU_FUZZ_SEED", "20261124"))
BATCH = 40                 # frames between two synchronising pings
ANSWER_TIMEOUT = 20.0     # seconds for a batch's answers: a bound, never a measure
MAX_MALFORMED_RUN = 9      # the server closes after 10 malformed frames in a row (1002)
# Who connects, and how: teachers, staff, students and a parent, in both encodings.
CLIENTS = [("t1", "json"), ("e1", "msgpack"), ("e2", "json"), ("t2", "msgpack"),
           ("a1", "json"), ("e3", "msgpack"), ("p1", "json"), ("s1", "msgpack")]
USERS = ["t1", "t2", "a1", "s1", "e1", "e2", "e3", "p1", "p2", "p3", "nobody", "T1"]
# A three-byte stand-in that is replaced, once packed, by the UTF-8-like encoding of a
# lone surrogate: MessagePack cannot carry one, so a hostile client writes the bytes.
SURROGATE_STANDIN = "\x01\x02\x03"
LIMITS = {"body": 8000, "subject": 200, "client_id": 64, "user": 64}  # characters
PLAIN = ("abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,;:!?'\"-\\/ éèàçùœ ÉÀ « » "
         "€ 😀👩‍🏫🇫🇷 中文 العربية \u200b\u00a0\t\n")


@dataclass(slots=True)
class Fuzz:
    """One frame to send, and what must come back for it."""

    data: str | bytes
    ref: str | None = None        # a reply or an error must carry this ref
    optional: bool = False        # typing: answered only when refused
    error_without_ref: bool = False
    malformed: bool = False       # counts towards the 10-in-a-row close


@dataclass(slots=True)
class Generator:
    """A seeded source of frames for one connection."""

    rng: random.Random
    encoding: str
    discussions: list[int]
    serial: int = 0
    malformed_run: int = 0
    client_ids: list[str] = field(default_factory=lambda: [f"c{i}" for i in range(30)])

    # ------------------------------------------------------------------ values

    def text(self, low: int = 1, high: int = 60) -> str:
        n = self.rng.randint(low, high)
        text = "".join(self.rng.choice(PLAIN) for _ in range(n))
        return text if text.strip() else text + "x"

    def unstorable(self) -> str:
        """A string the server must refuse: a lone surrogate or a NUL, inside or alone."""
        bad = self.rng.choice(["\x00", "\ud800", "\udfff", "\udbff", "\udc00"])
        if bad != "\x00" and self.encoding == "msgpack":
            bad = SURROGATE_STANDIN
        return self.rng.choice(["", "a", "Léa "]) + bad + self.rng.choice(["", "z"])

    def discussion(self) -> int:
        if self.discussions and self.rng.random() < 0.85:
            return self.rng.choice(self.discussions)
        return self.rng.randint(1, 40)

    def wrong_value(self) -> Any:
        """Neither an integer from 0 to 2^63 - 1 nor a string: wrong for every field."""
        big = 2**64 - 1 if self.encoding == "msgpack" else 10**self.rng.randint(19, 400)
        return self.rng.choice([-1, -(2**63), 2**63, big, 1.5, -0.0, float("nan"),
                                float("inf"), True, False, [1], {"n": 1}])

    def deep(self, depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value] if self.rng.random() < 0.5 else {"k": value}
        return value

    def too_deep(self) -> str | bytes:
        """Nesting deeper than a decoder should follow (written out: dumps would recurse)."""
        depth = self.rng.choice([3000, 20_000])
        if self.encoding == "json":
            return "[" * depth + "]" * depth
        return b"\x91" * depth + b"\x01"

    def ref(self) -> str:
        self.serial += 1
        return f"{self.encoding[0]}{self.serial}"

    # ------------------------------------------------------------------ frames

    def valid(self) -> dict[str, Any]:
        kind = self.rng.choices(
            ["send", "start", "read", "typing", "list", "history", "invite", "ping"],
            weights=[30, 6, 12, 10, 5, 10, 3, 4])[0]
        if kind == "send":
            return {"type": "send", "discussion": self.discussion(),
                    "body": self.text(1, 300), "client_id": self.rng.choice(self.client_ids)}
        if kind == "start":
            to = self.rng.sample(USERS, self.rng.randint(1, 3))
            return {"type": "start", "subject": self.text(1, 40), "to": to,
                    "body": self.text(), "client_id": self.rng.choice(self.client_ids)}
        if kind == "read":
            return {"type": "read", "discussion": self.discussion(),
                    "seq": self.rng.randint(0, 200)}
        if kind in ("typing", "ping", "list"):
            frame: dict[str, Any] = {"type": kind}
            if kind == "typing":
                frame["discussion"] = self.discussion()
            return frame
        if kind == "history":
            frame = {"type": "history", "discussion": self.discussion(),
                     "limit": self.rng.randint(1, 100)}
            if self.rng.random() < 0.5:
                frame["before"] = self.rng.randint(1, 300)
            return frame
        return {"type": "invite", "discussion": self.discussion(),
                "user": self.rng.choice(USERS)}

    def spoiled(self) -> dict[str, Any]:
        """A frame that decodes but cannot be served: one field is wrong."""
        frame = self.valid()
        if frame["type"] in ("ping", "list", "typing"):
            frame = {"type": "send", "discussion": self.discussion(), "body": "x",
                     "client_id": "c"}
        fields = [k for k in frame if k != "type"]
        name = self.rng.choice(fields)
        how = self.rng.randrange(7)
        if how == 0 and isinstance(frame[name], str):
            frame[name] = self.unstorable()
        elif how == 1 and name == "to":
            frame["to"] = self.rng.choice([[], [self.unstorable()], ["x" * 65],
                                           ["e1"] * 51, "e1", [1]])
        elif how == 2 and isinstance(frame[name], str):
            frame[name] = "x" * (LIMITS[name] + self.rng.choice([1, 100, 12_000]))
        elif how == 3:
            frame[name] = self.deep(self.rng.randint(1, 200))
        elif how == 4:
            frame["type"] = self.rng.choice(["teleport", "SEND", "", "hello", "x" * 500,
                                             "s\x00end", 7, None, ["send"]])
            if frame["type"] is None:
                del frame["type"]
        elif how == 5 and isinstance(frame[name], str):
            frame[name] = "   " if name != "body" else " \n\t "
        elif isinstance(frame[name], str):
            frame[name] = self.rng.choice([self.wrong_value(), None, 0, 42])
        else:
            frame[name] = self.rng.choice([self.wrong_value(), "1", ""])
        return frame

    def encode(self, frame: Any) -> str | bytes:
        if self.encoding == "json":
            return json.dumps(frame)
        packed: bytes = msgpack.packb(frame, use_bin_type=True)
        return packed.replace(SURROGATE_STANDIN.encode(), b"\xed\xa0\x80")

    def undecodable(self) -> str | bytes:
        """Bytes that are not a frame at all, or not a map once decoded."""
        json_side = self.encoding == "json"
        choice = self.rng.randrange(6)
        if choice == 0:  # the other encoding's kind of frame
            return b"\x81\xa4type\xa4ping" if json_side else '{"type": "ping"}'
        if choice == 1:
            return self.too_deep()
        if choice == 2:
            return self.encode(self.rng.choice([[], "ping", 1, None, [{"type": "ping"}]]))
        if choice == 3 and json_side:
            digits = "9" * self.rng.randint(4301, 6000)
            return f'{{"type": "read", "discussion": 1, "seq": {digits}, "ref": "big"}}'
        if json_side:
            return self.rng.choice(["{", "{'type': 'ping'}", '{"type": "ping",}', "",
                                    "\x00", '{"type": "ping", "ref": "r"'])
        # Truncated, reserved, or carrying a string that is not UTF-8.
        return self.rng.choice([b"\x81\xa4ty", b"\xc1", b"", b"\x81\xa4type\xa3\xed\xa0\x80",
                                b"\x82\xa4type\xa4ping\xa3ref\xa2\xff\xfe",
                                b"\x81\x91\x01\x01", b"\xdf\xff\xff\xff\xff"])

    def next(self) -> Fuzz:
        roll = self.rng.random()
        if self.malformed_run >= MAX_MALFORMED_RUN or roll < 0.45:
            self.malformed_run = 0
            frame = self.valid()
            ref = self.ref()
            return Fuzz(self.encode({**frame, "ref": ref}), ref=ref,
                        optional=frame["type"] == "typing")
        self.malformed_run += 1
        if roll < 0.75:
            frame = self.spoiled()
            ref = self.ref()
            carried = self.encode({**frame, "ref": ref})
            if self.encoding == "msgpack" and b"\xed\xa0\x80" in carried:
                return Fuzz(carried, error_without_ref=True, malformed=True)
            return Fuzz(carried, ref=ref, malformed=True)
        if roll < 0.85:  # a ref the answer could not carry back
            bad_ref = self.rng.choice([self.unstorable(), "r" * 65, 12, ["r"], None, 1.5])
            frame = {**self.rng.choice([self.valid(), self.spoiled()]), "ref": bad_ref}
            if bad_ref is None:
                frame = self.spoiled()
                frame.pop("ref", None)
            return Fuzz(self.encode(frame), error_without_ref=True, malformed=True)
        return Fuzz(self.undecodable(), error_without_ref=True, malformed=True)


@dataclass(slots=True)
class Outcome:
    frames: int = 0
    answered: int = 0
    closes: list[tuple[str, int | None, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)



@pytest.fixture
def node(tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer() as redis:
        c = Cluster(tmp_path, redis, nodes=1)
        try:
            c.prepare()
            c.start(0)
            yield c
        finally:
            c.close()


async def connections(c: Cluster) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        count: int = (await http.get(f"{c.http(0)}/readyz")).json()["connections"]
        return count


async def setup_discussions(c: Cluster) -> list[int]:
    """A few discussions, so that many random frames reach real ones."""
    ids = []
    for sender, to in (("t1", ["e1", "e2", "p1"]), ("t2", ["e3"]), ("a1", ["t1", "t2", "s1"]),
                       ("t1", ["e1"])):
        wire, _ = await Wire.signed_in(c.ws(0), c.token(sender))
        started = await wire.request({"type": "start", "subject": "Fuzz", "to": to,
                                      "body": "Bonjour", "client_id": f"setup-{sender}"})
        assert started["type"] == "started", started
        ids.append(started["discussion"]["id"])
        await wire.close()
    return ids


async def run_client(c: Cluster, user: str, encoding: str, frames: int, seed: int,
                     discussions: list[int], outcome: Outcome) -> None:
    gen = Generator(random.Random(seed), encoding, discussions)
    wire, _ = await Wire.signed_in(c.ws(0), c.token(user), encoding)
    sent = 0
    batch_no = 0
    try:
        while sent < frames:
            batch = [gen.next() for _ in range(min(BATCH, frames - sent))]
            sync = f"sync-{batch_no}"
            batch_no += 1
            for fuzz in batch:
                await wire.send_raw(fuzz.data)
            await wire.send({"type": "ping", "ref": sync})
            sent += len(batch) + 1
            gen.malformed_run = 0
            answers: dict[str, int] = {}
            errors_without_ref = 0
            while True:
                frame = await wire.recv(timeout=ANSWER_TIMEOUT)
                ref = frame.get("ref")
                if ref == sync:
                    break
                if isinstance(ref, str):
                    answers[ref] = answers.get(ref, 0) + 1
                elif frame.get("type") == "error":
                    errors_without_ref += 1
            expected = {f.ref for f in batch if f.ref is not None and not f.optional}
            optional = {f.ref for f in batch if f.optional}
            missing = expected - set(answers)
            unknown = set(answers) - expected - optional
            twice = {r for r, n in answers.items() if n > 1}
            wanted = sum(f.error_without_ref for f in batch)
            if missing or unknown or twice or errors_without_ref != wanted:
                outcome.problems.append(
                    f"{user}/{encoding} batch {batch_no}: missing {sorted(missing)[:5]}, "
                    f"unexpected {sorted(unknown)[:5]}, twice {sorted(twice)[:5]}, "
                    f"{errors_without_ref} errors without ref for {wanted} frames: "
                    f"{[f.data[:80] for f in batch if f.error_without_ref]}")
            outcome.answered += len(answers)
            wire.frames.clear()
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        outcome.closes.append((user, rcvd.code if rcvd else None, rcvd.reason if rcvd else ""))
    except TimeoutError:
        outcome.problems.append(f"{user}/{encoding}: batch {batch_no} unanswered after "
                                f"{ANSWER_TIMEOUT} s")
    finally:
        outcome.frames += sent
        await wire.close()


async def test_fuzzed_frames_never_harm_the_node(node: Cluster) -> None:
    baseline = await connections(node)
    discussions = await setup_discussions(node)
    outcome = Outcome()
    per_client = FRAMES // len(CLIENTS)
    started = time.monotonic()
    await asyncio.gather(*(
        run_client(node, user, encoding, per_client, SEED + i, discussions, outcome)
        for i, (user, encoding) in enumerate(CLIENTS)))
    elapsed = time.monotonic() - started
    print(f"\nfuzz: {outcome.frames} frames ({outcome.answered} answers with a ref) "
          f"from {len(CLIENTS)} connections in {elapsed:.1f} s, seed {SEED}")
    assert outcome.closes == [], outcome.closes
    assert outcome.problems == [], outcome.problems[:10]
    assert outcome.frames >= FRAMES - len(CLIENTS)
    for _ in range(200):
        if await connections(node) == baseline:
            break
        await asyncio.sleep(0.05)
    assert await connections(node) == baseline
    log = (node.tmp / "node0.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "ERROR" not in log, log[-4000:]


async def test_the_generator_is_deterministic() -> None:
    """The same seed gives the same frames: a failure can be replayed."""
    def frames(seed: int) -> list[str | bytes]:
        gen = Generator(random.Random(seed), "msgpack", [1, 2])
        return [gen.next().data for _ in range(300)]

    assert frames(SEED) == frames(SEED)
    assert frames(SEED) != frames(SEED + 1)
