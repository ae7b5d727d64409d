"""Telegram Chat Bot: answers through the model and remembers each chat's last turns."""

from __future__ import annotations

import json

import pytest

from flows.models import KVEntry
from tests.templates.support import connect, log_of, run_of

CHAT = 4242


@pytest.fixture
def chat_bot(user, from_template, telegram, llm_connection, client):
    connect(user, "telegram", "My bot", {}, {"bot_token": telegram.token})
    flow = from_template("telegram-chat-bot", {"memory_turns": 2})
    updates = iter(range(1, 100))

    def say(text: str) -> dict:
        update = {
            "update_id": next(updates),
            "message": {
                "message_id": 10,
                "from": {"id": 7, "is_bot": False, "first_name": "Ada"},
                "chat": {"id": CHAT, "type": "private", "first_name": "Ada"},
                "date": 1700000000,
                "text": text,
            },
        }
        response = client.post(
            f"/hooks/telegram/{flow.webhook_token}/",
            data=json.dumps(update),
            content_type="application/json",
            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=flow.webhook_secret,
        )
        assert response.status_code == 202, response.content
        return response.json()

    return flow, say


def test_each_message_is_answered_with_the_last_turns_of_the_chat(chat_bot, telegram, llm):
    flow, say = chat_bot
    llm.replies += ["Hello Ada!", "You are Ada.", "Paris.", "You asked about Paris."]

    for text in ("Hi, I am Ada", "Who am I?", "Capital of France?"):
        run = run_of(say(text))
        assert run.status == "succeeded", run.error
    run = run_of(say("What did I ask?"))

    assert [m["text"] for m in telegram.messages] == [
        "Hello Ada!",
        "You are Ada.",
        "Paris.",
        "You asked about Paris.",
    ]
    assert {m["chat_id"] for m in telegram.messages} == {str(CHAT)}
    # memory_turns = 2: the fourth question sees the two turns before it, not the first.
    assert llm.chats[3]["messages"] == [
        {
            "role": "system",
            "content": "You are a helpful, friendly assistant. Answer briefly and clearly.",
        },
        {"role": "user", "content": "Who am I?"},
        {"role": "assistant", "content": "You are Ada."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "What did I ask?"},
    ]
    memory = KVEntry.objects.get(flow=flow, key=f"chat:{CHAT}")
    assert [m["content"] for m in memory.value] == [
        "Capital of France?",
        "Paris.",
        "What did I ask?",
        "You asked about Paris.",
    ]
    assert memory.expires_at is not None
    assert log_of(run, "info") == [f"chat: Answered chat {CHAT} (2 turns remembered)."]


def test_reset_forgets_the_conversation_and_start_greets(chat_bot, telegram, llm):
    flow, say = chat_bot
    llm.replies += ["Hello Ada!"]
    run_of(say("Hi, I am Ada"))

    run_of(say("/reset"))
    run_of(say("/start"))

    assert [m["text"] for m in telegram.messages] == [
        "Hello Ada!",
        "Done: I have forgotten our conversation.",
        "Hello! Ask me anything. Send /reset to make me forget our conversation.",
    ]
    assert not KVEntry.objects.filter(flow=flow).exists()
    assert len(llm.chats) == 1


def test_a_model_failure_gets_an_apology_and_fails_the_run(chat_bot, telegram, llm):
    flow, say = chat_bot
    llm.fail_next(400, {"error": {"message": "bad request", "code": None}})

    run = run_of(say("Hello?"))

    assert run.status == "failed"
    assert [m["text"] for m in telegram.messages] == [
        "Sorry, I cannot answer right now. Please try again in a moment."
    ]
    assert "The model failed: The LLM server at 127.0.0.1 answered 400 Bad Request" in run.error
