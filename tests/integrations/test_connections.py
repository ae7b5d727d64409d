"""Connections: forms (config vs secrets), encryption at rest, key rotation, "Test connection",
the admin, and redaction of known secret values."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations import services
from integrations.forms import form_for
from integrations.models import Connection
from integrations.redaction import redact, redact_value, secret_values

TOKEN = "ghp_fakeToken1234567890abcdWXYZ"


def save_connection(user, service: str, data: dict, instance=None) -> Connection:
    form = form_for(service)(data, owner=user, instance=instance)
    assert form.is_valid(), form.errors
    return form.save()


# Forms and encryption ------------------------------------------------------------------------


def test_a_saved_secret_is_encrypted_and_only_its_last_four_characters_remain(user):
    connection = save_connection(user, "github", {"name": "Work GitHub", "token": TOKEN})
    stored = Connection.objects.get(pk=connection.pk)
    assert TOKEN not in stored.secrets_encrypted
    assert stored.get_secrets() == {"token": TOKEN}
    assert stored.secret_hints == {"token": "WXYZ"}
    assert stored.config == {}
    assert (stored.owner, stored.service) == (user, "github")


def test_the_edit_form_never_shows_a_saved_secret_and_keeps_it_when_left_empty(user):
    connection = save_connection(user, "github", {"name": "Work GitHub", "token": TOKEN})
    form = form_for("github")(owner=user, instance=connection)
    html = form.as_div()
    assert TOKEN not in html
    assert 'placeholder="\u2022\u2022\u2022\u2022WXYZ"' in html
    assert "Saved; it ends in \u2026WXYZ. Leave empty to keep it." in html
    edited = save_connection(
        user,
        "github",
        {"name": "Work GitHub", "token": "", "api_url": "https://ghe.example.com/api/v3"},
        instance=connection,
    )
    assert edited.get_secrets() == {"token": TOKEN}
    assert edited.config == {"api_url": "https://ghe.example.com/api/v3"}
    replaced = save_connection(
        user, "github", {"name": "Work GitHub", "token": "ghp_new_token_9876"}, instance=edited
    )
    assert replaced.get_secrets() == {"token": "ghp_new_token_9876"}
    assert replaced.secret_hints == {"token": "9876"}


def test_a_bound_form_with_errors_does_not_echo_the_secret(user):
    form = form_for("telegram")({"name": "", "bot_token": "123:short"}, owner=user)
    assert not form.is_valid()
    assert "123:short" not in form.as_div()
    assert form.errors["bot_token"] == ["A bot token looks like 123456789:AA... (from @BotFather)."]


def test_connection_names_are_unique_per_owner(user, django_user_model):
    save_connection(user, "github", {"name": "Main", "token": TOKEN})
    form = form_for("discord")(
        {"name": "Main", "webhook_url": "https://discord.com/api/webhooks/1/abc"}, owner=user
    )
    assert not form.is_valid()
    assert form.errors["name"] == ["You already have a connection with this name."]
    other = django_user_model.objects.create_user("bob")
    assert form_for("github")({"name": "Main", "token": TOKEN}, owner=other).is_valid()


def test_llm_form_splits_settings_from_the_api_key(user):
    connection = save_connection(
        user,
        "llm",
        {
            "name": "Local",
            "base_url": "http://localhost:11434/v1",
            "model": "llama3.1",
            "context_size": "8192",
            "api_key": "",
        },
    )
    assert connection.config == {
        "base_url": "http://localhost:11434/v1",
        "model": "llama3.1",
        "context_size": 8192,
    }
    assert connection.get_secrets() == {}


def test_slack_form_needs_a_webhook_url_or_a_bot_token(user):
    form = form_for("slack")({"name": "Slack"}, owner=user)
    assert not form.is_valid()
    assert form.non_field_errors() == ["Give an incoming webhook URL or a bot token."]
    connection = save_connection(
        user, "slack", {"name": "Slack", "bot_token": "xoxb-1-2-abcd", "default_channel": "#ci"}
    )
    assert connection.config == {"default_channel": "#ci"}
    assert connection.secret_hints == {"bot_token": "abcd"}


def test_http_form_keeps_each_secret_header_apart(user):
    connection = save_connection(
        user,
        "http",
        {"name": "Weather API", "headers": "Authorization: Bearer abc123xyz\nX-Api-Key: k-9999"},
    )
    assert connection.get_secrets() == {
        "header:Authorization": "Bearer abc123xyz",
        "header:X-Api-Key": "k-9999",
    }
    form = form_for("http")(owner=user, instance=connection)
    assert "Authorization \u20263xyz, X-Api-Key \u20269999" in form.as_div()
    assert "abc123xyz" not in form.as_div()
    bad = form_for("http")({"name": "Bad", "headers": "no colon here"}, owner=user)
    assert bad.errors["headers"] == ["Line 1 is not of the form Name: value."]


def test_a_form_of_another_service_refuses_a_connection(user):
    connection = save_connection(user, "github", {"name": "GH", "token": TOKEN})
    with pytest.raises(
        ValueError, match="A github connection cannot be edited with the slack form"
    ):
        form_for("slack")(owner=user, instance=connection)


# Test connection -----------------------------------------------------------------------------


def make(user, service: str, config: dict, secrets: dict, name: str = "") -> Connection:
    connection = Connection(owner=user, service=service, name=name or service, config=config)
    connection.set_secrets(secrets)
    connection.save()
    return connection


def test_github_connection_test_names_the_tokens_user(user, github):
    connection = make(user, "github", {}, {"token": github.token})
    assert services.test_connection(connection) == (True, "Connected to GitHub as flowbot.")
    connection.refresh_from_db()
    assert connection.last_test_ok is True
    assert connection.last_test_result == "Connected to GitHub as flowbot."
    assert connection.last_tested_at is not None
    assert [r.path for r in github.requests] == ["/user"]


def test_github_connection_test_reports_a_bad_token(user, github):
    connection = make(user, "github", {}, {"token": "ghp_expired"})
    assert services.test_connection(connection) == (
        False,
        "GitHub says the token is invalid or has expired (Bad credentials).",
    )
    connection.refresh_from_db()
    assert connection.last_test_ok is False


def test_llm_connection_test_lists_the_models(user, llm):
    connection = make(user, "llm", {"base_url": llm.base_url, "model": "llama3"}, {})
    assert services.test_connection(connection) == (
        True,
        "Connected: the server offers 2 model(s): llama3, qwen2.5-coder.",
    )
    connection.config["model"] = "mistral"
    assert services.test_connection(connection) == (
        False,
        "Connected, but the server does not offer the model mistral; it offers: llama3, "
        "qwen2.5-coder.",
    )


def test_slack_connection_tests(user, slack):
    bot = make(user, "slack", {}, {"bot_token": slack.bot_token})
    assert services.test_connection(bot) == (True, "Connected to Slack workspace Acme as flowbot.")
    hook = make(user, "slack", {}, {"webhook_url": slack.webhook_url}, name="hook")
    assert services.test_connection(hook) == (
        True,
        "Slack knows this incoming webhook URL (nothing was posted).",
    )
    assert slack.messages == []
    gone = make(user, "slack", {}, {"webhook_url": slack.url + "/services/T/B/old"}, name="old")
    assert services.test_connection(gone) == (
        False,
        "Slack says this incoming webhook URL is not valid (no_service): it was removed or "
        "mistyped.",
    )


def test_telegram_and_discord_connection_tests(user, telegram, discord):
    bot = make(user, "telegram", {}, {"bot_token": telegram.token})
    assert services.test_connection(bot) == (
        True,
        "Connected to Telegram as @flow_test_bot (Flow Bot).",
    )
    hook = make(user, "discord", {}, {"webhook_url": discord.webhook_url})
    assert services.test_connection(hook) == (
        True,
        "Connected to the Discord webhook Flowbuilder (channel 987654321).",
    )
    assert discord.messages == []


def test_http_connection_test(user, website):
    empty = make(user, "http", {}, {})
    assert services.test_connection(empty) == (
        True,
        "Nothing to test: this connection only adds headers to requests.",
    )
    based = make(
        user, "http", {"base_url": f"{website.url}/echo"}, {"header:X-Key": "k-12345"}, name="b"
    )
    assert services.test_connection(based) == (True, "127.0.0.1 answered 200 OK.")
    assert website.requests[-1].headers["x-key"] == "k-12345"


def test_connection_test_with_secrets_from_another_key(user, settings):
    settings.FLOWS_ENCRYPTION_KEY = Fernet.generate_key().decode()
    connection = make(user, "github", {}, {"token": TOKEN})
    settings.FLOWS_ENCRYPTION_KEY = Fernet.generate_key().decode()
    assert services.test_connection(connection) == (
        False,
        "The stored secrets cannot be decrypted: FLOWS_ENCRYPTION_KEY does not hold the key "
        "they were encrypted with.",
    )


# Key rotation --------------------------------------------------------------------------------


def test_rotate_encryption_key_re_encrypts_everything_with_the_newest_key(user, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FLOWS_ENCRYPTION_KEY = old
    first = make(user, "github", {}, {"token": TOKEN})
    second = make(user, "telegram", {}, {"bot_token": "1:abcdefghijklmnopqrstuvwxyz"})
    settings.FLOWS_ENCRYPTION_KEY = f"{new},{old}"
    call_command("rotate_encryption_key")
    assert capsys.readouterr().out == (
        "Re-encrypted the secrets of 2 connection(s) with the newest key.\n"
    )
    settings.FLOWS_ENCRYPTION_KEY = new
    assert Connection.objects.get(pk=first.pk).get_secrets() == {"token": TOKEN}
    assert Connection.objects.get(pk=second.pk).get_secrets() == {
        "bot_token": "1:abcdefghijklmnopqrstuvwxyz"
    }


def test_rotation_changes_nothing_when_a_connection_cannot_be_decrypted(user, settings):
    lost, old, new = (Fernet.generate_key().decode() for _ in range(3))
    settings.FLOWS_ENCRYPTION_KEY = old
    kept = make(user, "github", {}, {"token": TOKEN})
    before = Connection.objects.get(pk=kept.pk).secrets_encrypted
    settings.FLOWS_ENCRYPTION_KEY = lost
    orphan = make(user, "discord", {}, {"webhook_url": "https://discord.com/api/webhooks/1/x"})
    settings.FLOWS_ENCRYPTION_KEY = f"{new},{old}"
    with pytest.raises(CommandError) as error:
        call_command("rotate_encryption_key")
    assert str(error.value) == (
        f"1 connection(s) cannot be decrypted with any key in FLOWS_ENCRYPTION_KEY: "
        f"{orphan.name} (id {orphan.pk}). Nothing was changed: add the key they were encrypted "
        "with after the new one, and run this again."
    )
    assert Connection.objects.get(pk=kept.pk).secrets_encrypted == before


# Admin ---------------------------------------------------------------------------------------


def test_the_admin_shows_hints_and_test_results_but_never_secrets(admin_client, user, github):
    connection = make(user, "github", {}, {"token": github.token}, name="Work GitHub")
    page = admin_client.get(f"/admin/integrations/connection/{connection.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert github.token not in html
    assert connection.secrets_encrypted not in html
    assert "WXYZ" in html
    response = admin_client.post(
        "/admin/integrations/connection/",
        {"action": "test_selected", "_selected_action": [connection.pk]},
        follow=True,
    )
    assert "Work GitHub: Connected to GitHub as flowbot." in response.content.decode()


# Redaction -----------------------------------------------------------------------------------


def test_redact_masks_every_known_secret_and_its_url_encoded_form():
    secrets = secret_values({"token": "s3cr3t/value+1", "headers": {"a": "Bearer abcdefgh12345"}})
    assert secrets == ["s3cr3t/value+1", "Bearer abcdefgh12345", "abcdefgh12345"]
    text = "token s3cr3t/value+1 in https://x.test/?t=s3cr3t%2Fvalue%2B1, auth abcdefgh12345"
    assert redact(text, secrets) == (
        "token [redacted] in https://x.test/?t=[redacted], auth [redacted]"
    )
    assert redact_value({"k": ["s3cr3t/value+1", 3]}, secrets) == {"k": ["[redacted]", 3]}
    assert redact("nothing here", []) == "nothing here"
