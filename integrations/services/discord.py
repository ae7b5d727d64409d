"""Discord: post a message through a channel's webhook URL (connection secret `webhook_url`)."""

from __future__ import annotations

from typing import Any

import httpx

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from integrations.capabilities import offer
from integrations.services.base import ServiceClient, ServiceError, short_detail

# Discord's codes for a webhook that is gone or whose token is wrong.
UNKNOWN_WEBHOOK = {10015, 50027}


class Discord(ServiceClient):
    service = "discord"
    name = "Discord"

    def __init__(self, secrets: dict | None, log=None):
        self.webhook_url = ((secrets or {}).get("webhook_url") or "").strip()
        if not self.webhook_url:
            raise CapabilityError("The Discord connection has no webhook URL.")
        super().__init__(guard=True, secrets=[self.webhook_url], log=log)

    def retry_delay(self, response: httpx.Response) -> float | None:
        try:
            return float(response.json()["retry_after"])
        except (ValueError, KeyError, TypeError):
            return super().retry_delay(response)

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        if status in (401, 404) or code in UNKNOWN_WEBHOOK:
            return self.fail(
                "Discord says this webhook does not exist: it was deleted or the URL is wrong."
            )
        if status == 400 and isinstance(body, dict):
            return self.fail(f"Discord rejected the message: {_field_errors(body)}.")
        if status == 403:
            return self.fail(f"Discord refused the message: {short_detail(response)}.")
        return super().error_for(response, what)


def _field_errors(body: dict) -> str:
    """Discord's 400 bodies: {"content": ["Must be 2000 or fewer in length."]} or nested errors."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "_errors" in node:
                found.extend(
                    f"{path}: {str(e.get('message')).rstrip('.')}" for e in node["_errors"]
                )
            for key, value in node.items():
                if key != "_errors":
                    walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list) and all(isinstance(i, str) for i in node):
            found.extend(f"{path}: {i.rstrip('.')}" for i in node)

    walk(body.get("errors", {k: v for k, v in body.items() if k not in {"code", "message"}}), "")
    return "; ".join(found) or body.get("message", "invalid message")


@offer(
    "discord.post",
    service="discord",
    title="Discord: post a message",
    description="Post a message to a Discord channel through the connection's webhook.",
    params=(
        Param("content", "text", label="Content", required=True, description="up to 2000 chars"),
        Param("username", "string", label="Username", description="override the webhook's name"),
        Param("embeds", "json", label="Embeds", description="a list of Discord embeds"),
    ),
    result="Discord's message object: id, channel_id, content",
    writes=True,
)
def post(ctx: CapabilityContext, payload: dict) -> dict:
    message = {k: payload[k] for k in ("content", "username", "embeds") if k in payload}
    with Discord(ctx.secrets, ctx.log) as discord:
        response = discord.request(
            "POST", discord.webhook_url, params={"wait": "true"}, json=message, what="the webhook"
        )
    return response.json()


def test(config: dict, secrets: dict) -> str:
    """A GET on the webhook URL: Discord describes the webhook without posting."""
    with Discord(secrets) as discord:
        hook = discord.request("GET", discord.webhook_url, what="the webhook").json()
    return (
        f"Connected to the Discord webhook {hook.get('name')} (channel {hook.get('channel_id')})."
    )
