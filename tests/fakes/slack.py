"""A fake Slack: incoming webhooks (/services/...) and the Web API (/api/chat.postMessage,
/api/auth.test) with Slack's answers: "ok"/error codes in plain text for webhooks, {"ok": false,
"error": ...} with a 200 for the Web API, 429 with Retry-After when rate limited.

    with FakeSlack() as slack:
        secrets = {"webhook_url": slack.webhook_url}          # or {"bot_token": slack.bot_token}
        settings.FLOWS_SLACK_API_URL = slack.api_url
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import Answer, FakeServer, Recorded

HOOK_PATH = "/services/T0001/B0001/hookSecret1234567890"


class FakeSlack(FakeServer):
    def __init__(self, bot_token: str = "xoxb-fake-bot-token-5678"):
        self.bot_token = bot_token
        # channel -> whether the bot is a member
        self.channels: dict[str, bool] = {"#general": True, "C0123": True, "#random": False}
        self.archived_hook = False
        self.messages: list[dict[str, Any]] = []
        super().__init__()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{HOOK_PATH}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def routes(self):
        return [
            ("POST", r"/services/(?P<hook>.+)", self.incoming_webhook),
            ("POST", r"/api/chat\.postMessage", self.post_message),
            ("POST", r"/api/auth\.test", self.auth_test),
        ]

    def rate_limit_next(self, retry_after: int = 1, *, times: int = 1) -> None:
        self.fail_next(429, "rate_limited", headers={"Retry-After": str(retry_after)}, times=times)

    def incoming_webhook(self, request: Recorded, hook: str) -> Answer:
        if f"/services/{hook}" != HOOK_PATH:
            return Answer(404, "no_service")
        if self.archived_hook:
            return Answer(410, "channel_is_archived")
        body = request.json or {}
        if not body.get("text") and not body.get("blocks"):
            return Answer(400, "no_text")
        self.messages.append({"via": "webhook", **body})
        return Answer(200, "ok")

    def _authorized(self, request: Recorded) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.bot_token}"

    def post_message(self, request: Recorded) -> Answer:
        if not self._authorized(request):
            return Answer(200, {"ok": False, "error": "invalid_auth"})
        body = request.json or {}
        channel = body.get("channel")
        if channel not in self.channels:
            return Answer(200, {"ok": False, "error": "channel_not_found"})
        if not self.channels[channel]:
            return Answer(200, {"ok": False, "error": "not_in_channel"})
        if not body.get("text") and not body.get("blocks"):
            return Answer(200, {"ok": False, "error": "no_text"})
        ts = f"1700000000.{len(self.messages):06d}"
        self.messages.append({"via": "bot", "ts": ts, **body})
        return Answer(
            200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}}
        )

    def auth_test(self, request: Recorded) -> Answer:
        if not self._authorized(request):
            return Answer(200, {"ok": False, "error": "invalid_auth"})
        return Answer(
            200,
            {
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user": "flowbot",
                "team_id": "T0001",
                "user_id": "U0001",
            },
        )
