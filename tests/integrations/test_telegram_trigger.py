"""The Telegram trigger: a bot's webhook starts a run, which answers through the telegram.send
block, end to end through the engine and a fake Bot API."""

from __future__ import annotations

import copy
import json

import pytest

from flows.models import Run, StepRun
from integrations.models import Connection
from integrations.services.telegram import set_webhook

UPDATE = {
    "update_id": 10001,
    "message": {
        "message_id": 5,
        "from": {"id": 4242, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": 4242, "type": "private", "first_name": "Ada"},
        "date": 1700000000,
        "text": "hello bot",
    },
}


@pytest.fixture
def bot(user, telegram) -> Connection:
    connection = Connection(owner=user, service="telegram", name="Bot")
    connection.set_secrets({"bot_token": telegram.token})
    connection.save()
    return connection


def echo_document(bot: Connection, **trigger_config) -> dict:
    return {
        "schema": "flowbuilder/flow@1",
        "name": "Echo bot",
        "trigger": {
            "kind": "trigger.telegram",
            "config": {"updates": ["message"], **trigger_config},
        },
        "settings": {},
        "connections": {"bot": {"service": "telegram", "connection": bot.pk}},
        "steps": [
            {
                "id": "reply",
                "kind": "telegram.send",
                "config": {"text": "You said: {{ event.text }}"},
            }
        ],
        "edges": [["trigger", "reply"]],
    }


def send_update(client, flow, update: dict, secret: str | None = None):
    headers = {}
    if secret is not False:
        headers["HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN"] = (
            flow.webhook_secret if secret is None else secret
        )
    return client.post(
        f"/hooks/telegram/{flow.webhook_token}/", json.dumps(update), "application/json", **headers
    )


def test_a_message_starts_a_run_that_replies_in_the_same_chat(client, make_flow, bot, telegram):
    flow = make_flow(echo_document(bot))
    response = send_update(client, flow, UPDATE)
    assert response.status_code == 202
    run = Run.objects.get(flow=flow)
    assert response.json() == {"run": run.pk}
    assert (run.trigger, run.delivery_id, run.status) == ("telegram", "telegram-10001", "succeeded")
    assert run.event == {
        "name": "message",
        "update_id": 10001,
        "chat_id": 4242,
        "text": "hello bot",
        "from": {"id": 4242, "is_bot": False, "first_name": "Ada"},
        "payload": UPDATE,
    }
    assert telegram.messages == [{"chat_id": "4242", "text": "You said: hello bot"}]
    step = StepRun.objects.get(run=run)
    assert step.input == {"chat_id": 4242, "text": "You said: hello bot"}
    assert step.output["text"] == "You said: hello bot"


def test_a_wrong_or_missing_secret_token_is_refused(client, make_flow, bot, telegram):
    flow = make_flow(echo_document(bot))
    for secret in ("guess", False):
        response = send_update(client, flow, UPDATE, secret=secret)
        assert response.status_code == 401
        assert response.json() == {
            "error": "The X-Telegram-Bot-Api-Secret-Token header is missing or wrong: register "
            "the webhook with this flow's webhook secret as its secret_token."
        }
    assert not Run.objects.exists()
    assert telegram.messages == []


def test_updates_of_other_kinds_and_chats_are_ignored(client, make_flow, bot):
    flow = make_flow(echo_document(bot, chats=["4242"]))
    edited = {"update_id": 10002, "edited_message": UPDATE["message"]}
    assert send_update(client, flow, edited).json() == {
        "ignored": "update edited_message is not one of message"
    }
    elsewhere = copy.deepcopy(UPDATE)
    elsewhere["message"]["chat"]["id"] = 777
    assert send_update(client, flow, elsewhere).json() == {
        "ignored": "chat 777 is not one of this flow's chats"
    }
    assert not Run.objects.exists()


def test_telegram_redelivering_an_update_runs_it_once(client, make_flow, bot, telegram):
    flow = make_flow(echo_document(bot))
    first = send_update(client, flow, UPDATE)
    again = send_update(client, flow, UPDATE)
    assert again.json() == {"run": first.json()["run"], "duplicate": True}
    assert len(telegram.messages) == 1


def test_set_webhook_points_the_bot_at_the_flows_url_with_its_secret(
    make_flow, bot, telegram, settings
):
    settings.FLOWS_PUBLIC_URL = "https://flows.example.com"
    flow = make_flow(echo_document(bot))
    url = f"https://flows.example.com/hooks/telegram/{flow.webhook_token}/"
    assert (
        set_webhook(bot, flow, ["message"]) == f"Telegram now delivers this bot's updates to {url}."
    )
    assert telegram.webhook == {
        "url": url,
        "secret_token": flow.webhook_secret,
        "allowed_updates": ["message"],
    }
