"""Telegram: send messages as a bot (sendMessage), and receive them through the bot's webhook.

Connection secret `bot_token` (from @BotFather); config `default_chat_id`. The Bot API base is
FLOWS_TELEGRAM_API_URL. The token is part of every Bot API URL, so our errors never show a URL.
"""

from __future__ import annotations

import httpx
from django.conf import settings
from django.urls import reverse

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from integrations.capabilities import offer
from integrations.services.base import ServiceClient, ServiceError


class Telegram(ServiceClient):
    service = "telegram"
    name = "Telegram"

    def __init__(self, secrets: dict | None, log=None):
        self.token = ((secrets or {}).get("bot_token") or "").strip()
        if not self.token:
            raise CapabilityError("The Telegram connection has no bot token.")
        super().__init__(
            base_url=f"{settings.FLOWS_TELEGRAM_API_URL.rstrip('/')}/bot{self.token}",
            secrets=[self.token],
            log=log,
        )

    def retry_delay(self, response: httpx.Response) -> float | None:
        try:
            return float(response.json()["parameters"]["retry_after"])
        except (ValueError, KeyError, TypeError):
            return super().retry_delay(response)

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        status = response.status_code
        try:
            description = response.json().get("description", "")
        except (ValueError, AttributeError):
            description = ""
        if status in (401, 404):
            return self.fail(f"Telegram says the bot token is not valid ({description}).")
        if status == 400 and "chat not found" in description.lower():
            return self.fail(
                f"Telegram says the chat {what} was not found: add the bot to the group, or have "
                "the user start a conversation with it first."
            )
        if status in (400, 403) and description:
            return self.fail(f"Telegram refused: {description}.")
        if status == 429:
            return self.fail(
                f"Telegram is rate limiting this bot: {description or 'Too Many Requests'}.",
                retryable=True,
            )
        return super().error_for(response, what)

    def call(self, method: str, body: dict | None = None, *, what: str = "") -> dict:
        data = self.request("POST", f"/{method}", json=body or {}, what=what or method).json()
        return data.get("result")


@offer(
    "telegram.send",
    service="telegram",
    title="Telegram: send a message",
    description="Send a message as the connection's bot to a chat (a user, group or channel).",
    params=(
        Param(
            "chat_id",
            "string",
            label="Chat id",
            default="{{ event.chat_id }}",
            description="numeric id or @channelname; defaults to the connection's chat",
        ),
        Param("text", "text", label="Text", required=True, description="up to 4096 characters"),
        Param(
            "parse_mode",
            "choice",
            label="Format",
            choices=("MarkdownV2", "HTML", "Markdown"),
            description="how Telegram reads the text",
        ),
        Param("disable_notification", "boolean", label="Silent"),
        Param("reply_to_message_id", "integer", label="Reply to message"),
    ),
    result="Telegram's message object: message_id, chat, date, text",
    writes=True,
)
def send(ctx: CapabilityContext, payload: dict) -> dict:
    chat_id = payload.get("chat_id") or (ctx.connection_config or {}).get("default_chat_id")
    if not chat_id:
        raise CapabilityError(
            "telegram.send needs a 'chat_id', or a default chat in the Telegram connection."
        )
    body = {k: v for k, v in payload.items() if k != "reply_to_message_id"}
    body["chat_id"] = chat_id
    if "reply_to_message_id" in payload:
        body["reply_parameters"] = {"message_id": payload["reply_to_message_id"]}
    with Telegram(ctx.secrets, ctx.log) as telegram:
        return telegram.call("sendMessage", body, what=str(chat_id))


def test(config: dict, secrets: dict) -> str:
    """getMe: the bot the token belongs to."""
    with Telegram(secrets) as telegram:
        bot = telegram.call("getMe")
    return f"Connected to Telegram as @{bot.get('username')} ({bot.get('first_name')})."


def set_webhook(connection, flow, updates: list[str] | None = None) -> str:
    """Point the bot's webhook at this flow's Telegram trigger URL, with the flow's secret."""
    path = reverse("telegram-hook", args=[flow.webhook_token])
    if not settings.FLOWS_PUBLIC_URL:
        raise CapabilityError(
            "Set FLOWS_PUBLIC_URL to the address Telegram can reach this server at."
        )
    url = f"{settings.FLOWS_PUBLIC_URL.rstrip('/')}{path}"
    body = {"url": url, "secret_token": flow.webhook_secret, "allowed_updates": updates or []}
    with Telegram(connection.get_secrets()) as telegram:
        telegram.call("setWebhook", body, what="setWebhook")
    return f"Telegram now delivers this bot's updates to {url}."
