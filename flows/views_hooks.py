"""Generic webhook trigger: POST /hooks/<token>/ starts a run; GET /hooks/<token>/runs/<id>/ tells
how it went. The unguessable token in the URL is the credential, so answers are JSON only and
never reveal anything about other flows.

`?wait=N` (seconds, capped by FLOWS_WEBHOOK_MAX_WAIT_S) answers with the run's output once it
finishes, which turns a flow into a serverless function; a run that takes longer gets the usual
202 with its status URL. A delivery id header (X-Delivery-Id, X-GitHub-Delivery) makes retried
deliveries run once.

Outages get answers a caller can act on. The run queue (Redis) down: 202, the run is stored and
the recovery sweep starts it once the queue is back (`"queued_later": true`), so the caller must
not send it again. The database down: 503, nothing stored (web.middleware). An owner over their
quota (flows.quotas): 429 with Retry-After, nothing stored.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from flows import quotas
from flows.engine import FlowNotDeployed, FlowPaused, answers, broadcast, start_run
from flows.engine.queue import QueueUnreachable
from flows.engine.runs import deployed_version
from flows.models import Flow, Run
from integrations import jsonlimits

logger = logging.getLogger(__name__)

DELIVERY_HEADERS = ("X-Delivery-Id", "X-GitHub-Delivery")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Request headers never copied into the event: they carry the caller's own credentials.
PRIVATE_HEADERS = {"cookie", "authorization", "proxy-authorization"}
# Run events after which the caller who waits may have an answer.
ANSWERS = ("run", "response")
# Runs that end like this answer with an error status rather than the usual envelope.
FAILED = {Run.Status.FAILED, Run.Status.CANCELLED}


# Seconds a caller is told to wait before trying again while the database is down.
DATABASE_RETRY_AFTER_S = 30
# What a caller is told when the run is stored but the queue could not take it.
QUEUED_LATER = (
    "The run queue is unreachable: the run is stored and will start once the queue is back "
    "(the recovery sweep sends queued runs again within a few minutes). Do not send it again."
)


# Per event loop: how many requests may hold a database connection at once.
_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The threads that do the hooks' database work, as many as the gate lets in (per process).
_threads: dict[str, Any] = {"pool": None, "pid": None}
_threads_lock = threading.Lock()


@functools.cache
def _in_server() -> bool:
    from flows.engine.embedded import is_server_process

    return is_server_process()


def _hook_threads() -> ThreadPoolExecutor:
    with _threads_lock:
        if _threads["pid"] != os.getpid():
            _threads["pool"] = ThreadPoolExecutor(
                max_workers=settings.FLOWS_HOOK_DB_CONCURRENCY, thread_name_prefix="flows-hook"
            )
            _threads["pid"] = os.getpid()
        return _threads["pool"]


async def _database(func, *args: Any) -> Any:
    """`func(*args)` on one of the hooks' threads, with at most FLOWS_HOOK_DB_CONCURRENCY requests
    of this process at it at once, and the connection handed back to the pool afterwards: a
    caller who then waits a minute for its answer holds none, and a burst of a thousand callers
    queues here instead of timing out on the pool (which would read as a database outage).

    The threads last: Django's own way (`sync_to_async` in a request) starts a thread for each
    request. With them an embedded server spends 7.6 ms of CPU on the peer workload's run
    instead of 8.4 (bench/peers.py). Outside a server process (Django's test client, whose
    requests share the test's transaction) the work stays on the caller's thread."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(settings.FLOWS_HOOK_DB_CONCURRENCY)

    def call() -> Any:
        try:
            return func(*args)
        finally:
            if not connection.in_atomic_block:  # a test's transaction stays open
                close_old_connections()

    async with gate:
        if not _in_server():
            return await sync_to_async(call)()
        return await loop.run_in_executor(_hook_threads(), call)


class BadRequest(Exception):
    def __init__(self, status: int, message: str, retry_after_s: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def _error(status: int, message: str, retry_after_s: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if retry_after_s:
        response["Retry-After"] = str(retry_after_s)
    return response


def database_unreachable(exc: BaseException) -> bool:
    """A connection to the database could not be made or was lost (not a bad query)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


def database_down_answer() -> JsonResponse:
    response = JsonResponse(
        {
            "error": "The database is unreachable: nothing was stored. Try again later.",
            "stored": False,
        },
        status=503,
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response


def _unless_database_down(view):
    """/hooks/ skips the middleware (flowbuilder.asgi): its views answer a database outage."""

    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except DatabaseError as exc:
            if not database_unreachable(exc):
                raise
            logger.error("database unreachable: %s", exc)
            return database_down_answer()

    guarded.__name__ = view.__name__
    guarded.__doc__ = view.__doc__
    return guarded


def _status_url(request: HttpRequest, token: str, run_id: int) -> str:
    return request.build_absolute_uri(reverse("flows:hook_run", args=[token, run_id]))


def _parse_body(request: HttpRequest) -> Any:
    limit = settings.FLOWS_WEBHOOK_MAX_BYTES
    too_big = BadRequest(
        413, f"The request body is larger than this server's limit of {limit} bytes."
    )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > limit:
        raise too_big
    content_type = request.content_type or ""
    if content_type in FORM_TYPES:
        form = {
            key: values[0] if len(values) == 1 else values for key, values in request.POST.lists()
        }
        try:
            jsonlimits.check_storable(form)
        except jsonlimits.Refused as exc:
            raise BadRequest(400, f"The request body is refused: {exc}.") from None
        return form
    if not raw.strip():
        return None
    try:
        text = raw.decode(request.encoding or "utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "The request body is not valid UTF-8 text.") from None
    reason = jsonlimits.unstorable_text(text)
    if reason:
        raise BadRequest(400, f"The request body is refused: {reason}.")
    declared_json = content_type == "application/json" or content_type.endswith("+json")
    try:
        return jsonlimits.loads(text)
    except jsonlimits.Refused as exc:
        if not declared_json:
            return text
        raise BadRequest(400, f"The request body is refused: {exc}.") from None
    except json.JSONDecodeError as exc:
        if not declared_json:
            return text
        raise BadRequest(
            400,
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}.",
        ) from None


def _event(request: HttpRequest, body: Any) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "query": {key: request.GET.get(key) for key in request.GET},
        "headers": {
            key.lower(): value
            for key, value in request.headers.items()
            if key.lower() not in PRIVATE_HEADERS
        },
        "body": body,
    }


def _wait_seconds(request: HttpRequest) -> float:
    raw = request.GET.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequest(400, "?wait= must be a number of seconds.") from None
    return max(0.0, min(wait, settings.FLOWS_WEBHOOK_MAX_WAIT_S))


def _run_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """What a caller is told about a run (`answers.answer_of`), without a respond step's answer,
    which goes out as the HTTP answer itself."""
    return {k: v for k, v in answer.items() if k != "response"}


def _start(token: str, event: dict, delivery_id: str, waits: bool) -> tuple[Run, bool]:
    """Start the flow's run (`waits`: the caller waits for its answer)."""
    # Only what starting a run reads: not the documents; the deployed plan from this process's
    # memory once read (a version never changes).
    flow = (
        Flow.objects.only("id", "owner_id", "name", "status", "current_version_id")
        .filter(webhook_token=token)
        .first()
    )
    if flow is None:
        raise BadRequest(404, "No flow has this webhook URL.")
    version = deployed_version(flow.current_version_id) if flow.current_version_id else None
    if version is not None:
        flow.current_version = version
    plan = (version.plan if version else {}) or {}
    trigger = plan.get("trigger", {})
    repeated = bool(delivery_id) and Run.objects.filter(flow=flow, delivery_id=delivery_id).exists()
    over = None if repeated else quotas.check(flow.owner_id)
    if over is not None:
        raise BadRequest(429, over.message, over.retry_after_s)
    try:
        if flow.status == Flow.Status.ACTIVE and trigger.get("kind") != "trigger.webhook":
            raise BadRequest(
                409,
                f"The flow '{flow.name}' is triggered by '{trigger.get('kind')}', not by "
                "webhooks: change its trigger to Webhook and deploy it.",
            )
        return start_run(
            flow,
            trigger="webhook",
            event=event,
            delivery_id=delivery_id,
            here=waits or bool(plan.get("responds")),
        )
    except (FlowPaused, FlowNotDeployed) as exc:
        raise BadRequest(409, str(exc)) from None


def _answered_run(run_id: int) -> dict[str, Any] | None:
    """The run's answer once it has one for its caller: a response set by a step, or its end."""
    run = Run.objects.filter(pk=run_id).first()
    if run is not None and (run.response is not None or run.is_finished):
        return answers.answer_of(run)
    return None


async def _wait_for(run_id: int, seconds: float, check_first: bool) -> dict[str, Any] | None:
    """The run's answer, or None after `seconds`. The process's hub hands it over; the database
    is read only when a notice could have been missed (`check_first`: the hub was not listening
    yet when the run started), and once more when time is up."""
    hub = answers.hub()
    deadline = time.monotonic() + seconds
    if check_first:
        await hub.ready()
        answer = await _database(_answered_run, run_id)
        if answer is not None:
            return answer
    while True:
        answer = await hub.wait(run_id, max(0.0, deadline - time.monotonic()))
        if answer is None or answer is answers.CHECK:
            answer = await _database(_answered_run, run_id)
            if answer is None and time.monotonic() < deadline:
                continue
        return answer


@csrf_exempt
@_unless_database_down
async def hook(request: HttpRequest, token: str) -> JsonResponse:
    broadcast.attach_loop(asyncio.get_running_loop())
    if request.method != "POST":
        return _error(405, "Send the event with POST.")
    try:
        wait = _wait_seconds(request)
        if wait:
            # Subscribed before the run exists, so that its answer cannot pass unheard.
            await answers.hub().ready()
        listening = answers.listening()
        body = _parse_body(request)
        delivery_id = next(
            (request.headers[h] for h in DELIVERY_HEADERS if request.headers.get(h)), ""
        )
        run, created = await _database(
            _start, token, _event(request, body), delivery_id, bool(wait)
        )
    except BadRequest as exc:
        return _error(exc.status, exc.message, exc.retry_after_s)
    except QueueUnreachable as exc:
        return JsonResponse(
            {
                "run_id": exc.run_id,
                "status": Run.Status.QUEUED,
                "status_url": _status_url(request, token, exc.run_id),
                "queued_later": True,
                "note": QUEUED_LATER,
            },
            status=202,
        )
    answer = {
        "run_id": run.pk,
        "status": run.status,
        "status_url": _status_url(request, token, run.pk),
    }
    if not created:
        return JsonResponse({**answer, "duplicate": True}, status=200)
    if not wait and (run.plan or {}).get("responds"):
        wait = settings.FLOWS_WEBHOOK_MAX_WAIT_S  # the flow answers its callers itself
    if wait:
        if run.is_finished:  # refused at once (a concurrency key dropped it)
            answered = answers.answer_of(run)
        else:
            answered = await _wait_for(run.pk, wait, check_first=not listening)
        if answered is not None and answered["response"] is not None:
            return _flow_response(answered["response"])
        if answered is not None:
            status = 500 if answered["status"] in FAILED else 200
            return JsonResponse(
                {**_run_answer(answered), "status_url": answer["status_url"]}, status=status
            )
    return JsonResponse(answer, status=202)


def _flow_response(response: dict[str, Any]) -> HttpResponse:
    """The answer an `http.respond` step set (its headers were checked when it ran)."""
    body = response.get("body")
    if response.get("body_type") == "text":
        answer = HttpResponse(str(body), status=response["status"])
        answer["Content-Type"] = "text/plain; charset=utf-8"
    else:
        answer = JsonResponse(body, status=response["status"], safe=False)
    for name, value in (response.get("headers") or {}).items():
        answer[name] = value
    return answer


def _run_status(token: str, run_id: int) -> Run | None:
    return Run.objects.filter(pk=run_id, flow__webhook_token=token).first()


@_unless_database_down
async def hook_run(request: HttpRequest, token: str, run_id: int) -> JsonResponse:
    run = await _database(_run_status, token, run_id)
    if run is None:
        return _error(404, "No run with this id belongs to this webhook.")
    return JsonResponse(_run_answer(answers.answer_of(run)))
