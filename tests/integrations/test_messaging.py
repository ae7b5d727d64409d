"""Slack, Discord and Telegram capabilities against fake servers speaking their APIs."""

from __future__ import annotations

import pytest

from flows.capabilities import CapabilityError
from tests.integrations.support import call

# Slack ---------------------------------------------------------------------------------------


def test_slack_posts_through_the_incoming_webhook(slack, recorder):
    ctx = recorder.context(secrets={"webhook_url": slack.webhook_url})
    assert call("slack.post", ctx, {"text": "Deployed *v2*"}) == {"ok": True}
    assert slack.messages == [{"via": "webhook", "text": "Deployed *v2*"}]


def test_slack_webhook_that_was_removed_is_a_permanent_error(slack, recorder):
    ctx = recorder.context(secrets={"webhook_url": slack.url + "/services/T0/B0/gone"})
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi"})
    assert error.value.message == (
        "Slack says this incoming webhook URL is not valid (no_service): it was removed or "
        "mistyped."
    )
    assert error.value.retryable is False


def test_slack_archived_channel(slack, recorder):
    slack.archived_hook = True
    ctx = recorder.context(secrets={"webhook_url": slack.webhook_url})
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi"})
    assert error.value.message == "Slack says the webhook's channel is archived."


def test_slack_bot_posts_with_chat_post_message_to_the_default_channel(slack, recorder):
    ctx = recorder.context(
        secrets={"bot_token": slack.bot_token}, config={"default_channel": "#general"}
    )
    result = call("slack.post", ctx, {"text": "hello", "blocks": [{"type": "divider"}]})
    assert result == {"ok": True, "channel": "#general", "ts": "1700000000.000000"}
    request = slack.requests[-1]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {slack.bot_token}"
    assert request.json == {"channel": "#general", "text": "hello", "blocks": [{"type": "divider"}]}


@pytest.mark.parametrize(
    "channel,message",
    [
        ("#nowhere", "Slack says the channel #nowhere was not found, or the bot cannot see it."),
        ("#random", "Slack says the bot is not in the channel #random: invite it there first."),
    ],
)
def test_slack_bot_channel_errors_in_words(slack, recorder, channel, message):
    ctx = recorder.context(secrets={"bot_token": slack.bot_token})
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi", "channel": channel})
    assert error.value.message == message


def test_slack_bot_with_a_revoked_token(slack, recorder):
    ctx = recorder.context(
        secrets={"bot_token": "xoxb-revoked"}, config={"default_channel": "C0123"}
    )
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi"})
    assert error.value.message == "Slack says the bot token is invalid or revoked (invalid_auth)."


def test_slack_bot_needs_a_channel(slack, recorder):
    ctx = recorder.context(secrets={"bot_token": slack.bot_token})
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi"})
    assert error.value.message == (
        "slack.post needs a 'channel', or a default channel in the Slack connection."
    )


def test_slack_rate_limit_is_retried(slack, recorder):
    slack.rate_limit_next(retry_after=0)
    ctx = recorder.context(secrets={"webhook_url": slack.webhook_url})
    assert call("slack.post", ctx, {"text": "hi"}) == {"ok": True}
    assert recorder.logs == [
        (
            "warning",
            "Slack is rate limiting these requests; it asks to wait 0 s. Retrying in "
            "0.0 s (attempt 2 of 3).",
        )
    ]


def test_slack_errors_never_show_the_webhook_url(recorder):
    ctx = recorder.context(
        secrets={"webhook_url": "http://127.0.0.1:9/services/T1/B1/sEcReTpArT123456"}
    )
    with pytest.raises(CapabilityError) as error:
        call("slack.post", ctx, {"text": "hi"})
    assert error.value.message == (
        "Slack cannot be reached at 127.0.0.1: [Errno 111] Connection refused."
    )


# Discord -------------------------------------------------------------------------------------


def test_discord_posts_and_returns_the_message(discord, recorder):
    ctx = recorder.context(secrets={"webhook_url": discord.webhook_url})
    message = call("discord.post", ctx, {"content": "Build passed", "username": "CI"})
    assert message["content"] == "Build passed"
    assert message["author"] == {"username": "CI", "bot": True}
    assert discord.requests[-1].query == {"wait": "true"}


def test_discord_field_errors_are_listed(discord, recorder):
    ctx = recorder.context(secrets={"webhook_url": discord.webhook_url})
    with pytest.raises(CapabilityError) as error:
        call("discord.post", ctx, {"content": "x" * 2001})
    assert error.value.message == (
        "Discord rejected the message: content: Must be 2000 or fewer in length."
    )


def test_discord_unknown_webhook(discord, recorder):
    ctx = recorder.context(secrets={"webhook_url": discord.url + "/api/webhooks/1/nope"})
    with pytest.raises(CapabilityError) as error:
        call("discord.post", ctx, {"content": "hi"})
    assert error.value.message == (
        "Discord says this webhook does not exist: it was deleted or the URL is wrong."
    )


def test_discord_rate_limit_uses_the_bodys_retry_after(discord, recorder):
    discord.rate_limit_next(retry_after=0.05)
    ctx = recorder.context(secrets={"webhook_url": discord.webhook_url})
    assert call("discord.post", ctx, {"content": "hi"})["content"] == "hi"
    assert recorder.logs == [
        (
            "warning",
            "Discord is rate limiting these requests; it asks to wait 0.1 s. Retrying "
            "in 0.1 s (attempt 2 of 3).",
        )
    ]


# Telegram ------------------------------------------------------------------------------------


def test_telegram_sends_a_message(telegram, recorder):
    ctx = recorder.context(secrets={"bot_token": telegram.token})
    message = call(
        "telegram.send",
        ctx,
        {"chat_id": "4242", "text": "*hi*", "parse_mode": "MarkdownV2", "reply_to_message_id": 9},
    )
    assert message["chat"]["id"] == 4242
    assert telegram.messages == [
        {
            "chat_id": "4242",
            "text": "*hi*",
            "parse_mode": "MarkdownV2",
            "reply_parameters": {"message_id": 9},
        }
    ]


def test_telegram_uses_the_connections_default_chat(telegram, recorder):
    ctx = recorder.context(
        secrets={"bot_token": telegram.token}, config={"default_chat_id": "4242"}
    )
    assert call("telegram.send", ctx, {"text": "hi"})["text"] == "hi"


def test_telegram_chat_not_found(telegram, recorder):
    ctx = recorder.context(secrets={"bot_token": telegram.token})
    with pytest.raises(CapabilityError) as error:
        call("telegram.send", ctx, {"chat_id": 7, "text": "hi"})
    assert error.value.message == (
        "Telegram says the chat 7 was not found: add the bot to the group, or have the user "
        "start a conversation with it first."
    )


def test_telegram_bad_token_never_shows_the_token(telegram, recorder):
    ctx = recorder.context(secrets={"bot_token": "999:WrongTokenWrongTokenWrong"})
    with pytest.raises(CapabilityError) as error:
        call("telegram.send", ctx, {"chat_id": 4242, "text": "hi"})
    assert error.value.message == "Telegram says the bot token is not valid (Unauthorized)."


def test_telegram_rate_limit_follows_parameters_retry_after(telegram, recorder, settings):
    settings.FLOWS_HTTP_RETRY_AFTER_MAX_S = 10
    telegram.rate_limit_next(retry_after=35)
    ctx = recorder.context(secrets={"bot_token": telegram.token})
    with pytest.raises(CapabilityError) as error:
        call("telegram.send", ctx, {"chat_id": 4242, "text": "hi"})
    assert error.value.message == (
        "Telegram is rate limiting this bot: Too Many Requests: retry after 35."
    )
    assert error.value.retryable is True
    assert telegram.messages == []


def test_telegram_rejects_a_bad_parse_mode_before_calling(telegram, recorder):
    ctx = recorder.context(secrets={"bot_token": telegram.token})
    with pytest.raises(CapabilityError) as error:
        call("telegram.send", ctx, {"chat_id": 4242, "text": "hi", "parse_mode": "BBCode"})
    assert error.value.message == (
        "telegram.send: 'parse_mode' must be one of MarkdownV2, HTML, Markdown, got 'BBCode'."
    )
    assert telegram.requests == []
