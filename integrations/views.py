"""Trigger endpoints: GitHub webhook deliveries and Telegram bot updates, each answered in JSON.

Both find the flow by the unguessable token in the URL, check the sender with the flow's webhook
secret (GitHub: HMAC-SHA256 of the raw body; Telegram: the secret-token header), then either
start a run (202 with its id) or say why the event is ignored (200, so the sender does not retry).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from flows.models import Flow
from integrations import jsonlimits
from integrations.triggers import (
    GITHUB_TRIGGER,
    TELEGRAM_TRIGGER,
    NotTriggerable,
    deployed_trigger,
    github_mismatch,
    telegram_event,
    telegram_mismatch,
)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest) -> bytes | JsonResponse:
    limit = settings.FLOWS_WEBHOOK_MAX_BYTES
    too_big = _error(413, f"The body is larger than the limit of {limit:,} bytes.")
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return too_big
        body = request.body
    except (ValueError, RequestDataTooBig):
        return too_big
    return too_big if len(body) > limit else body


def _received(request: HttpRequest, token: str) -> tuple[Flow, bytes] | JsonResponse:
    """The flow the URL's token names and the delivery's body, or the error answer."""
    # The draft and the deployed document are not needed: the trigger is read from the plan.
    flow = (
        Flow.objects.select_related("current_version")
        .defer("document", "current_version__document")
        .filter(webhook_token=token)
        .first()
    )
    if flow is None:
        return _error(404, "No flow has this webhook URL.")
    body = _body(request)
    if isinstance(body, JsonResponse):
        return body
    return flow, body


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    value = jsonlimits.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"the {what} is not a JSON object")
    return value


def _start(flow: Flow, trigger: str, event: dict[str, Any], delivery_id: str) -> JsonResponse:
    from flows.engine import start_run
    from flows.engine.errors import FlowNotDeployed, FlowPaused

    try:
        run, created = start_run(flow, trigger=trigger, event=event, delivery_id=delivery_id)
    except (FlowNotDeployed, FlowPaused) as exc:
        return _error(409, str(exc))
    if created:
        return JsonResponse({"run": run.pk}, status=202)
    return JsonResponse({"run": run.pk, "duplicate": True})


def _github_payload(request: HttpRequest, body: bytes) -> dict:
    # GitHub sends either JSON or, when the hook is set to form encoding, a `payload` field.
    if request.content_type == "application/x-www-form-urlencoded":
        body = (parse_qs(body.decode()).get("payload") or ["{}"])[0].encode()
    return _json_object(body, "payload")


@csrf_exempt
def github_hook(request: HttpRequest, webhook_token: str) -> JsonResponse:
    if request.method != "POST":
        return _error(405, "GitHub delivers webhooks with POST.")
    received = _received(request, webhook_token)
    if isinstance(received, JsonResponse):
        return received
    flow, body = received
    signature = request.headers.get("X-Hub-Signature-256", "")
    if not signature:
        return _error(
            401,
            "The delivery has no X-Hub-Signature-256 header: set this flow's webhook secret as "
            "the secret of the GitHub webhook.",
        )
    expected = "sha256=" + hmac.new(flow.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return _error(
            401,
            "The X-Hub-Signature-256 signature does not match: the GitHub webhook's secret is not "
            "this flow's webhook secret.",
        )
    event = request.headers.get("X-GitHub-Event", "")
    if not event:
        return _error(400, "The delivery has no X-GitHub-Event header.")
    try:
        payload = _github_payload(request, body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"The body is not a JSON object: {exc}.")
    if event == "ping":
        return JsonResponse({"ok": True, "zen": payload.get("zen", "")})
    try:
        config, flow_settings = deployed_trigger(flow, GITHUB_TRIGGER)
        reason = github_mismatch(config, flow_settings, event, payload)
    except NotTriggerable as exc:
        return _error(409, str(exc))
    if reason:
        return JsonResponse({"ignored": reason})
    delivery = request.headers.get("X-GitHub-Delivery", "")
    return _start(
        flow,
        "github",
        {
            "name": event,
            "action": payload.get("action", ""),
            "payload": payload,
            "delivery": delivery,
        },
        delivery,
    )


@csrf_exempt
def telegram_hook(request: HttpRequest, webhook_token: str) -> JsonResponse:
    if request.method != "POST":
        return _error(405, "Telegram delivers updates with POST.")
    received = _received(request, webhook_token)
    if isinstance(received, JsonResponse):
        return received
    flow, body = received
    secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(secret.encode(), flow.webhook_secret.encode()):
        return _error(
            401,
            "The X-Telegram-Bot-Api-Secret-Token header is missing or wrong: register the webhook "
            "with this flow's webhook secret as its secret_token.",
        )
    try:
        update = _json_object(body, "update")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"The body is not a JSON object: {exc}.")
    event = telegram_event(update)
    try:
        config, _ = deployed_trigger(flow, TELEGRAM_TRIGGER)
    except NotTriggerable as exc:
        return _error(409, str(exc))
    if reason := telegram_mismatch(config, event):
        return JsonResponse({"ignored": reason})
    delivery = f"telegram-{update['update_id']}" if "update_id" in update else ""
    return _start(flow, "telegram", event, delivery)
