"""Answers every page needs: a Content-Security-Policy header, and a quick, honest answer when
the database cannot be reached."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

logger = logging.getLogger(__name__)

# Seconds a caller is told to wait before trying again during an outage.
RETRY_AFTER_S = 30


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.FLOWS_CSP and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.FLOWS_CSP
        return response


def _unreachable(exc: Exception) -> bool:
    # A connection that cannot be made or was lost; not a bad query (those stay server errors).
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


class DatabaseUnreachableMiddleware:
    """The database is down or out of connections: machines (webhooks) get a 503 JSON answer
    saying nothing was stored, people a plain page; neither waits for more than the connect and
    pool timeouts (FLOWS_DB_CONNECT_TIMEOUT_S, FLOWS_DB_POOL_TIMEOUT_S)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, DatabaseError) or not _unreachable(exc):
            return None
        logger.error("database unreachable: %s", exc)
        if request.path.startswith("/hooks/"):
            response: HttpResponse = JsonResponse(
                {
                    "error": "The database is unreachable: nothing was stored. Try again later.",
                    "stored": False,
                },
                status=503,
            )
        else:
            response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
