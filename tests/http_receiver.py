"""A tiny HTTP server on 127.0.0.1 that records what it is sent: it stands for a
relying party (Préau's callback, its logout URLs) where a test needs only to see what
an identity provider or a browser sends there."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver", "Request", "http_receiver"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    body: str


@dataclass
class Receiver:
    """``url`` is the server's base; ``requests`` grows as requests arrive."""

    url: str
    requests: list[Request] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, path_prefix: str, timeout: float = 10.0) -> Request:
        """The first request whose path starts with ``path_prefix`` (waits for it)."""
        def found() -> Request | None:
            return next((r for r in self.requests if r.path.startswith(path_prefix)), None)

        with self._arrived:
            if not self._arrived.wait_for(lambda: found() is not None, timeout=timeout):
                raise AssertionError(f"nothing arrived at {self.url}{path_prefix} "
                                     f"(got {self.requests!r})")
        request = found()
        assert request is not None
        return request

    def _record(self, request: Request) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """Serve on a free port until the block ends; every request is answered ``200 ok``."""
    record: Receiver

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            record._record(Request(self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # the tests look at ``requests``

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
