"""A fake website for the HTTP request block: echoes requests, returns chosen statuses, large
bodies and redirects.

    with FakeWebsite() as site:
        site.url + "/echo"          # answers JSON describing the request it got
        site.url + "/bytes/5000"    # 5000 bytes of text
        site.url + "/status/418"    # that status, with a JSON error body
        site.url + "/redirect"      # 302 to /echo
        site.url + "/slow/500"      # answers after 500 ms
"""

from __future__ import annotations

import time

from tests.fakes.base import Answer, FakeServer, Recorded


class FakeWebsite(FakeServer):
    def routes(self):
        routes = []
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            routes += [
                (method, r"/echo", self.echo),
                (method, r"/status/(?P<code>\d{3})", self.status),
            ]
        return routes + [
            ("GET", r"/bytes/(?P<size>\d+)", self.sized),
            ("GET", r"/redirect", self.redirect),
            ("GET", r"/text", self.text),
            ("GET", r"/slow/(?P<ms>\d+)", self.slow),
            ("POST", r"/slow/(?P<ms>\d+)", self.slow),
        ]

    def echo(self, request: Recorded) -> Answer:
        return Answer(
            200,
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": request.headers,
                "body": request.text,
            },
        )

    def status(self, request: Recorded, code: str) -> Answer:
        return Answer(int(code), {"error": f"status {code} as asked"})

    def sized(self, request: Recorded, size: str) -> Answer:
        return Answer(200, b"x" * int(size), {"Content-Type": "text/plain"})

    def redirect(self, request: Recorded) -> Answer:
        return Answer(302, b"", {"Location": "/echo"})

    def text(self, request: Recorded) -> Answer:
        return Answer(200, "caf\u00e9 ol\u00e9", {"Content-Type": "text/plain; charset=utf-8"})

    def slow(self, request: Recorded, ms: str) -> Answer:
        time.sleep(int(ms) / 1000)
        return Answer(200, {"slept_ms": int(ms)})
