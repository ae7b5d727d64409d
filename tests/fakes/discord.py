"""A fake Discord webhook endpoint: GET describes the webhook, POST (?wait=true) posts a message,
with Discord's error bodies (Unknown Webhook, field errors, 429 with retry_after).

    with FakeDiscord() as discord:
        secrets = {"webhook_url": discord.webhook_url}
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import Answer, FakeServer, Recorded

HOOK_ID = "112233445566778899"
HOOK_TOKEN = "discordHookToken_abcdefghijklmnop"


class FakeDiscord(FakeServer):
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{HOOK_ID}/{HOOK_TOKEN}"

    def routes(self):
        hook = r"/api/webhooks/(?P<hook_id>\d+)/(?P<token>[^/]+)"
        return [("GET", hook, self.get_webhook), ("POST", hook, self.execute)]

    def not_found(self, request: Recorded) -> Answer:
        return Answer(404, {"message": "404: Not Found", "code": 0})

    def rate_limit_next(self, retry_after: float = 0.2, *, times: int = 1) -> None:
        self.fail_next(
            429,
            {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
            headers={"Retry-After": str(max(1, round(retry_after)))},
            times=times,
        )

    def _known(self, hook_id: str, token: str) -> bool:
        return hook_id == HOOK_ID and token == HOOK_TOKEN

    def get_webhook(self, request: Recorded, hook_id: str, token: str) -> Answer:
        if not self._known(hook_id, token):
            return Answer(404, {"message": "Unknown Webhook", "code": 10015})
        return Answer(
            200,
            {
                "id": HOOK_ID,
                "type": 1,
                "name": "Flowbuilder",
                "channel_id": "987654321",
                "guild_id": "123123123",
                "token": HOOK_TOKEN,
            },
        )

    def execute(self, request: Recorded, hook_id: str, token: str) -> Answer:
        if not self._known(hook_id, token):
            return Answer(404, {"message": "Unknown Webhook", "code": 10015})
        body = request.json or {}
        content = body.get("content") or ""
        if not content and not body.get("embeds"):
            return Answer(400, {"message": "Cannot send an empty message", "code": 50006})
        if len(content) > 2000:
            return Answer(
                400,
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "content": {
                            "_errors": [
                                {
                                    "code": "BASE_TYPE_MAX_LENGTH",
                                    "message": "Must be 2000 or fewer in length.",
                                }
                            ]
                        }
                    },
                },
            )
        message = {
            "id": str(1000 + len(self.messages)),
            "channel_id": "987654321",
            "content": content,
            "author": {"username": body.get("username") or "Flowbuilder", "bot": True},
        }
        self.messages.append({**body, "id": message["id"]})
        if request.query.get("wait") == "true":
            return Answer(200, message)
        return Answer(204, b"")
