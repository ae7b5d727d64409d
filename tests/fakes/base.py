"""A small real HTTP server on 127.0.0.1 for tests: routes, a request log and canned failures.

Each fake service subclasses `FakeServer`, declares `routes` and keeps its own state. Use it as a
context manager (or call `start()`/`stop()`); `url` is its base URL.

    with FakeGitHub() as github:
        settings.FLOWS_GITHUB_API_URL = github.url
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Answer:
    status: int = 200
    body: Any = b""  # bytes, str, or anything JSON-able
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return data, headers


@dataclass
class CannedFailure:
    answer: Answer
    times: int
    method: str | None
    path: re.Pattern | None

    def matches(self, request: Recorded) -> bool:
        return (self.method is None or self.method == request.method) and (
            self.path is None or bool(self.path.fullmatch(request.path))
        )


Route = tuple[str, str, Callable[..., Answer]]


class FakeServer:
    """Threaded HTTP server speaking a service's API from `routes()`: (method, path regex, fn)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._canned: list[CannedFailure] = []
        self._compiled = [(m, re.compile(p), fn) for m, p, fn in self.routes()]
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        # Seconds each answer takes (outside the lock answers are made under, so calls overlap),
        # and the most requests served at the same time.
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    # lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        # A short poll interval lets stop() return quickly.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # what subclasses provide -------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return []

    # test controls -----------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        body: Any = b"",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with this instead of the real thing."""
        with self.lock:
            self._canned.append(
                CannedFailure(
                    Answer(status, body, headers or {}),
                    times,
                    method,
                    re.compile(path) if path else None,
                )
            )

    def requests_to(self, method: str, path_pattern: str = ".*") -> list[Recorded]:
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # dispatch ----------------------------------------------------------------------------------
    def dispatch(self, request: Recorded) -> Answer:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self.answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def answer(self, request: Recorded) -> Answer:
        """The answer to a request: a canned failure, else its route's."""
        with self.lock:
            self.requests.append(request)
            for canned in self._canned:
                if canned.times > 0 and canned.matches(request):
                    canned.times -= 1
                    return canned.answer
        for method, pattern, fn in self._compiled:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                with self.lock:
                    return fn(request, **match.groupdict())
        return self.not_found(request)

    def not_found(self, request: Recorded) -> Answer:
        return Answer(404, {"message": "Not Found"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Recorded(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = server.dispatch(request)
                data, headers = answer.encoded()
                self.send_response(answer.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the request log is `server.requests`."""

        return Handler
