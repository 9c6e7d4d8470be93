"""A small framework for fake platform APIs on loopback.

`FakeServer` runs a `FakeApp` on 127.0.0.1 (a free port) in a background
thread. An app implements `handle(request) -> Reply` the way the platform
would answer a well-behaved client, and records what it accepted. Tests can
make the next requests misbehave, in order:

    app.misbehave(Reply(429, {...}, {"Retry-After": "2"}), Reply(500), Reset())
    app.misbehave(Stall(2.0))            # answer nothing for 2 s, then hang up
    app.fail_always(Reply(503))          # every request until cleared
    app.latency = 0.2                    # every request is slow, then processed

Every request is kept in `app.requests` (method, path, query, headers, body).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a JSON-able body (or bytes / str) with optional headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reset:
    """Close the connection without answering (an RST, as a dropped connection looks)."""


@dataclass(frozen=True)
class Stall:
    """Answer nothing for `seconds` (past the client's timeout), then hang up.

    The request is not processed: from the platform's side it never arrived.
    """

    seconds: float


@dataclass(frozen=True)
class Drip:
    """Answer 200 with a body of `size` bytes, one byte every `interval` seconds (each
    within any per-read timeout), at most `bytes_before_hanging_up` of them."""

    interval: float
    size: int = 1000
    bytes_before_hanging_up: int = 50


@dataclass(frozen=True)
class Later:
    """A Reply made when the request arrives, not when the test scripts it: headers that
    name a moment ("the window resets in 10 s") are then true when they are read."""

    make: Callable[[], Reply]


Behaviour = Reply | Reset | Stall | Drip | Later


class FakeApp:
    """Base class of a fake platform. Subclasses implement `handle`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[FakeRequest] = []
        self.latency = 0.0
        # Requests being handled right now, and the most seen at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Behaviour] = deque()
        self._always: Behaviour | None = None

    def handle(self, request: FakeRequest) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError

    def misbehave(self, *behaviours: Behaviour) -> None:
        """The next len(behaviours) requests get these, in order, instead of `handle`."""
        with self.lock:
            self._script.extend(behaviours)

    def fail_always(self, behaviour: Behaviour | None) -> None:
        """Every request gets `behaviour` until called again with None."""
        with self.lock:
            self._always = behaviour

    def _next_behaviour(self) -> Behaviour | None:
        with self.lock:
            if self._script:
                return self._script.popleft()
            return self._always

    def respond(self, request: FakeRequest) -> Behaviour:
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            behaviour = self._next_behaviour()
            if isinstance(behaviour, Later):
                return behaviour.make()
            if behaviour is not None:
                return behaviour
            if self.latency:
                time.sleep(self.latency)
            return self.handle(request)
        finally:
            with self.lock:
                self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = FakeRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        behaviour = self.server.app.respond(request)
        if isinstance(behaviour, Reset):
            self._reset()
        elif isinstance(behaviour, Stall):
            time.sleep(behaviour.seconds)
            self._reset()
        elif isinstance(behaviour, Drip):
            self._drip(behaviour)
        else:
            self._reply(behaviour)

    def _reply(self, reply: Reply) -> None:
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drip(self, drip: Drip) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(drip.size))
        self.end_headers()
        self.wfile.flush()
        try:
            for _ in range(min(drip.size, drip.bytes_before_hanging_up)):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(drip.interval)
        except OSError:
            pass  # the client gave up, as it should
        self._reset()

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into an RST; the fd closes once every file
        # object made from the socket is closed too.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, app: FakeApp) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class FakeServer:
    """Run a FakeApp on a free loopback port in a background thread."""

    def __init__(self, app: FakeApp) -> None:
        self.app = app
        self._server = _Server(app)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
