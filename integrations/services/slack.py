"""Slack: post a message through an incoming webhook URL, or as a bot with chat.postMessage.

Connection secrets: `webhook_url` (an incoming webhook, bound to one channel) and/or `bot_token`
(xoxb-..., with the chat:write scope; the bot posts to any channel it was invited to). Config:
`default_channel`. The Web API base is FLOWS_SLACK_API_URL.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from integrations.capabilities import offer
from integrations.services.base import ServiceClient, ServiceError

TOKEN_ERRORS = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
WEBHOOK_GONE = {"no_service", "no_team", "invalid_token", "no_active_hooks", "team_disabled"}


class Slack(ServiceClient):
    service = "slack"
    name = "Slack"

    def __init__(self, secrets: dict | None, log=None, *, webhook: bool = False):
        secrets = secrets or {}
        self.webhook_url = (secrets.get("webhook_url") or "").strip()
        self.bot_token = (secrets.get("bot_token") or "").strip()
        super().__init__(
            base_url="" if webhook else settings.FLOWS_SLACK_API_URL.rstrip("/"),
            headers={} if webhook else {"Authorization": f"Bearer {self.bot_token}"},
            # A webhook URL is typed in by a user; the Web API base is the operator's setting.
            guard=webhook,
            secrets=[self.webhook_url, self.bot_token],
            log=log,
        )

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        code = response.text.strip()
        if response.status_code == 429:
            return super().error_for(response, what)
        if code in WEBHOOK_GONE:
            return self.fail(
                f"Slack says this incoming webhook URL is not valid ({code}): it was removed or "
                "mistyped."
            )
        if code == "channel_is_archived":
            return self.fail("Slack says the webhook's channel is archived.")
        if code == "channel_not_found":
            return self.fail("Slack says the webhook's channel no longer exists.")
        if 400 <= response.status_code < 500 and code and " " not in code:
            return self.fail(f"Slack rejected the message ({code}).")
        return super().error_for(response, what)

    def api(self, method: str, body: dict, channel: str = "") -> dict:
        """A Web API call; Slack reports failures as {"ok": false, "error": code} with a 200."""
        data = self.request("POST", f"/{method}", what=method, json=body).json()
        if data.get("ok"):
            return data
        code = data.get("error", "unknown_error")
        if code in TOKEN_ERRORS:
            raise self.fail(f"Slack says the bot token is invalid or revoked ({code}).")
        if code == "missing_scope":
            needed = data.get("needed", "chat:write")
            raise self.fail(f"Slack says the bot token lacks the {needed} scope.")
        if code == "channel_not_found":
            raise self.fail(
                f"Slack says the channel {channel} was not found, or the bot cannot see it."
            )
        if code == "not_in_channel":
            raise self.fail(
                f"Slack says the bot is not in the channel {channel}: invite it there first."
            )
        if code == "is_archived":
            raise self.fail(f"Slack says the channel {channel} is archived.")
        if code == "ratelimited":
            raise self.fail("Slack is rate limiting these requests.", retryable=True)
        raise self.fail(f"Slack refused {method} ({code}).")


@offer(
    "slack.post",
    service="slack",
    title="Slack: post a message",
    description=(
        "Post a message to Slack, through the connection's incoming webhook or as its bot "
        "(then to the given channel, or the connection's default channel)."
    ),
    params=(
        Param("text", "text", label="Text", required=True, description="message text (mrkdwn)"),
        Param("channel", "string", label="Channel", description="#name or id; bot token only"),
        Param("blocks", "json", label="Blocks", description="Block Kit blocks (a list)"),
        Param("thread_ts", "string", label="Thread", description="reply in this thread (bot)"),
    ),
    result="{ok: true, channel?, ts?} (channel and ts when posted by the bot)",
    writes=True,
)
def post(ctx: CapabilityContext, payload: dict) -> dict:
    secrets = ctx.secrets or {}
    message: dict[str, Any] = {"text": payload["text"]}
    if "blocks" in payload:
        if not isinstance(payload["blocks"], list):
            raise CapabilityError("slack.post: 'blocks' must be a list of Block Kit blocks.")
        message["blocks"] = payload["blocks"]
    if secrets.get("bot_token"):
        channel = payload.get("channel") or (ctx.connection_config or {}).get("default_channel")
        if not channel:
            raise CapabilityError(
                "slack.post needs a 'channel', or a default channel in the Slack connection."
            )
        if "thread_ts" in payload:
            message["thread_ts"] = payload["thread_ts"]
        with Slack(secrets, ctx.log) as slack:
            data = slack.api("chat.postMessage", {"channel": channel, **message}, channel)
        return {"ok": True, "channel": data.get("channel"), "ts": data.get("ts")}
    if secrets.get("webhook_url"):
        with Slack(secrets, ctx.log, webhook=True) as slack:
            slack.request("POST", slack.webhook_url, what="the incoming webhook", json=message)
        return {"ok": True}
    raise CapabilityError("The Slack connection has neither a webhook URL nor a bot token.")


def test(config: dict, secrets: dict) -> tuple[bool, str]:
    """auth.test for a bot token; for a webhook, an empty post Slack rejects without posting."""
    if secrets.get("bot_token"):
        with Slack(secrets) as slack:
            data = slack.api("auth.test", {})
        return True, f"Connected to Slack workspace {data.get('team')} as {data.get('user')}."
    if secrets.get("webhook_url"):
        with Slack(secrets, webhook=True) as slack:
            # Slack's refusal of an empty message is the answer we look for here.
            slack.returns_error_answers = True
            response = slack.request("POST", slack.webhook_url, json={}, what="the webhook")
        code = response.text.strip()
        if response.status_code == 400 and code in {"no_text", "invalid_payload", "missing_text"}:
            return True, "Slack knows this incoming webhook URL (nothing was posted)."
        raise slack.error_for(response, "the incoming webhook")
    return False, "The Slack connection has neither a webhook URL nor a bot token."
