"""A fake Telegram Bot API: /bot<token>/getMe, sendMessage and setWebhook with Telegram's answers
({"ok": false, "error_code": ..., "description": ...}, 429 with parameters.retry_after).

    with FakeTelegram() as telegram:
        settings.FLOWS_TELEGRAM_API_URL = telegram.url    # secrets: {"bot_token": telegram.token}
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.base import Answer, FakeServer, Recorded


def telegram_error(status: int, description: str, **extra: Any) -> Answer:
    return Answer(status, {"ok": False, "error_code": status, "description": description, **extra})


class FakeTelegram(FakeServer):
    def __init__(self, token: str = "123456789:AAFakeTelegramBotTokenXYZ_abcdefg"):
        self.token = token
        self.chats: set[int] = {4242}
        self.messages: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        super().__init__()

    def routes(self):
        bot = r"/bot(?P<token>[^/]+)"
        return [
            ("POST", rf"{bot}/getMe", self.get_me),
            ("POST", rf"{bot}/sendMessage", self.send_message),
            ("POST", rf"{bot}/setWebhook", self.set_webhook),
        ]

    def not_found(self, request: Recorded) -> Answer:
        return telegram_error(404, "Not Found")

    def rate_limit_next(self, retry_after: int = 1, *, times: int = 1) -> None:
        self.fail_next(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            },
            times=times,
        )

    def dispatch(self, request: Recorded) -> Answer:
        if not request.path.startswith(f"/bot{self.token}/"):
            with self.lock:
                self.requests.append(request)
            return telegram_error(401, "Unauthorized")
        return super().dispatch(request)

    def get_me(self, request: Recorded, token: str) -> Answer:
        return Answer(
            200,
            {
                "ok": True,
                "result": {
                    "id": 123456789,
                    "is_bot": True,
                    "first_name": "Flow Bot",
                    "username": "flow_test_bot",
                },
            },
        )

    def send_message(self, request: Recorded, token: str) -> Answer:
        body = request.json or {}
        try:
            chat_id = int(body.get("chat_id"))
        except (TypeError, ValueError):
            chat_id = None
        if chat_id not in self.chats:
            return telegram_error(400, "Bad Request: chat not found")
        text = body.get("text") or ""
        if not text:
            return telegram_error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return telegram_error(400, "Bad Request: message is too long")
        message = {
            "message_id": len(self.messages) + 1,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": text,
        }
        self.messages.append(body)
        return Answer(200, {"ok": True, "result": message})

    def set_webhook(self, request: Recorded, token: str) -> Answer:
        self.webhook = request.json or {}
        return Answer(200, {"ok": True, "result": True, "description": "Webhook was set"})
