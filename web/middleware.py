"""Answers every page needs: a Content-Security-Policy header, and a quick, honest answer when
the database cannot be reached."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template import loader

from flows.views_hooks import database_down_answer, database_unreachable

logger = logging.getLogger(__name__)

# Seconds a person is told to wait before trying again during an outage.
RETRY_AFTER_S = 30


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.FLOWS_CSP and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.FLOWS_CSP
        return response


class DatabaseUnreachableMiddleware:
    """The database is down or out of connections: people get a plain page (webhooks answer
    for themselves: flows.views_hooks); nobody waits for more than the connect and
    pool timeouts (FLOWS_DB_CONNECT_TIMEOUT_S, FLOWS_DB_POOL_TIMEOUT_S)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, DatabaseError) or not database_unreachable(exc):
            return None
        logger.error("database unreachable: %s", exc)
        if request.path.startswith("/hooks/"):  # when served without flowbuilder.asgi's router
            return database_down_answer()
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
