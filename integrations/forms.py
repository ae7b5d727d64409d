"""One connection form per service: which fields are settings (config) and which are secrets.

Secret fields are password inputs that never render a value: after saving, only the last four
characters show (as a hint), and leaving a secret empty when editing keeps the saved one.

    form = form_for("github")(request.POST or None, owner=request.user, instance=connection)
    if form.is_valid():
        connection = form.save()
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from django import forms
from django.conf import settings

from flows.capabilities import CapabilityError
from integrations.models import Connection
from integrations.services import github_app
from integrations.services.http import HEADER_SECRET_PREFIX

HEADER_LINE = re.compile(r"^(?P<name>[A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*:\s*(?P<value>.+)$")


def _secret_field(label: str, *, required: bool, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        help_text=help_text,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )


class SecretTextarea(forms.Textarea):
    """Like a password input, never sends what was typed back to the browser (on an error)."""

    def format_value(self, value: Any) -> None:
        return None


class ConnectionForm(forms.ModelForm):
    """The name, the service's config fields and its secret fields."""

    service: ClassVar[str] = ""
    title: ClassVar[str] = ""
    # How to obtain the credentials, shown above the form.
    instructions: ClassVar[str] = ""
    config_fields: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ()

    class Meta:
        model = Connection
        fields = ["name"]

    def __init__(self, *args: Any, owner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.service != self.service:
            raise ValueError(
                f"A {self.instance.service} connection cannot be edited with the {self.service} "
                "form."
            )
        self.owner = owner
        self.instance.owner = owner
        self.instance.service = self.service
        for name in self.config_fields:
            if name in (self.instance.config or {}):
                self.fields[name].initial = self.instance.config[name]
        hints = self.saved_hints()
        for name in self.secret_fields:
            if name in hints:
                field = self.fields[name]
                field.required = False
                field.widget.attrs["placeholder"] = f"\u2022\u2022\u2022\u2022{hints[name]}"
                field.help_text = (
                    f"Saved; it ends in \u2026{hints[name]}. Leave empty to keep it. "
                    + field.help_text
                ).strip()

    def saved_hints(self) -> dict[str, str]:
        """Hints of the saved secrets, by form field."""
        return dict(self.instance.secret_hints or {}) if self.instance.pk else {}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Connection.objects.owned_by(self.owner).filter(name=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("You already have a connection with this name.")
        return name

    def new_secrets(self) -> dict[str, Any]:
        """The secrets typed in this time (empty fields are left out)."""
        return {n: self.cleaned_data[n] for n in self.secret_fields if self.cleaned_data.get(n)}

    def merged_secrets(self) -> dict[str, Any]:
        saved = self.instance.get_secrets() if self.instance.pk else {}
        return {**saved, **self.new_secrets()}

    def save(self, commit: bool = True) -> Connection:
        connection = super().save(commit=False)
        connection.config = {
            name: self.cleaned_data[name]
            for name in self.config_fields
            if self.cleaned_data.get(name) not in (None, "")
        }
        connection.set_secrets(self.merged_secrets())
        if commit:
            connection.save()
        return connection


class GitHubConnectionForm(ConnectionForm):
    service = "github"
    title = "GitHub"
    instructions = (
        "Sign in with a token or as a GitHub App. A token: create a fine-grained personal access "
        "token at GitHub → Settings → Developer settings → Personal access tokens, for the "
        "repositories the bot works on, with the permissions Pull requests: read and write, "
        "Issues: read and write, Contents: read. A GitHub App (what organizations install): "
        "at GitHub → Settings → Developer settings → GitHub Apps → New GitHub App, give it the "
        "same permissions, generate a private key, install the App on the repositories, then "
        "fill in the App ID and paste the private key here (and leave the token empty)."
    )
    config_fields = ("api_url", "app_id", "installation_id")
    secret_fields = ("token", "private_key")

    api_url = forms.URLField(
        label="API URL",
        assume_scheme="https",
        required=False,
        help_text="Only for GitHub Enterprise Server, e.g. https://github.example.com/api/v3.",
    )
    token = _secret_field(
        "Token", required=False, help_text="A personal access token; empty for a GitHub App."
    )
    app_id = forms.RegexField(
        label="GitHub App ID",
        regex=r"^[A-Za-z0-9.]{1,40}$",
        required=False,
        help_text="The App ID on the App's settings page (About → App ID); empty for a token.",
        error_messages={"invalid": "The App ID is a number, e.g. 123456."},
    )
    private_key = forms.CharField(
        label="GitHub App private key",
        required=False,
        help_text=(
            "The whole .pem file of a key generated on the App's settings page (Private keys → "
            "Generate a private key). Stored encrypted, never shown again."
        ),
        widget=SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
    )
    installation_id = forms.RegexField(
        label="Installation ID",
        regex=r"^\d{1,20}$",
        required=False,
        help_text=(
            "Optional. Empty: each run uses the installation its GitHub event names. Set it for "
            "runs that do not start from a GitHub event: the number at the end of the "
            "installation's URL, github.com/settings/installations/<id>."
        ),
        error_messages={"invalid": "The installation ID is a number, e.g. 12345678."},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        saved = self.saved_hints()
        key = data.get("private_key") or ""
        if data.get("app_id"):
            if data.get("token"):
                raise forms.ValidationError(
                    "Fill in either a token or a GitHub App (App ID and private key), not both."
                )
            if not key and "private_key" not in saved:
                self.add_error("private_key", "A GitHub App needs its private key.")
        elif key:
            self.add_error("app_id", "A private key belongs to a GitHub App: add its App ID.")
        elif not data.get("token") and "token" not in saved:
            self.add_error("token", "Fill in a token, or the App ID and private key of an App.")
        if key:
            try:
                github_app.check_private_key(key)
            except CapabilityError as exc:
                self.add_error("private_key", str(exc))
        return data

    def merged_secrets(self) -> dict[str, Any]:
        # One way to sign in is kept: switching to an App forgets the token, and back.
        secrets = super().merged_secrets()
        secrets.pop("token" if self.cleaned_data.get("app_id") else "private_key", None)
        return secrets


class LLMConnectionForm(ConnectionForm):
    service = "llm"
    title = "LLM (OpenAI-compatible)"
    instructions = (
        "Any server that speaks OpenAI's chat completions API. OpenAI: base URL "
        "https://api.openai.com/v1 and an API key from platform.openai.com. Ollama: "
        "http://localhost:11434/v1, no key. llama.cpp's llama-server: http://localhost:8080/v1."
    )
    config_fields = ("base_url", "model", "context_size")
    secret_fields = ("api_key",)

    base_url = forms.URLField(
        label="Base URL",
        assume_scheme="https",
        initial="https://api.openai.com/v1",
        help_text="Usually ends in /v1.",
    )
    model = forms.CharField(label="Model", help_text="e.g. gpt-4o-mini, llama3.1, qwen2.5-coder")
    context_size = forms.IntegerField(
        label="Context size (tokens)",
        required=False,
        min_value=256,
        help_text="When set, long prompts are trimmed to fit (about 4 characters a token).",
    )
    api_key = _secret_field("API key", required=False, help_text="Local servers need none.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_url"].help_text += " " + local_servers_note("llm")


def local_servers_note(service: str) -> str:
    """What this server lets a service reach of its own network (FLOWS_PRIVATE_HOSTS)."""
    if settings.FLOWS_ALLOW_PRIVATE_HOSTS:
        return "This server lets connections reach local and private addresses."
    allowed = sorted(settings.FLOWS_PRIVATE_HOSTS.get(service, ()))
    if not allowed:
        return (
            "Local and private addresses are refused here unless the operator allows one "
            f"(FLOWS_PRIVATE_HOSTS={service}=host:port)."
        )
    hosts = ", ".join(f"{host}:{port}" for host, port in allowed)
    return f"Of local and private addresses, this server allows {hosts}."


class SlackConnectionForm(ConnectionForm):
    service = "slack"
    title = "Slack"
    instructions = (
        "Either an incoming webhook URL (Slack app → Incoming Webhooks; posts to one channel), or "
        "a bot token (xoxb-..., scope chat:write; invite the bot to each channel it posts to)."
    )
    config_fields = ("default_channel",)
    secret_fields = ("webhook_url", "bot_token")

    webhook_url = _secret_field("Incoming webhook URL", required=False)
    bot_token = _secret_field("Bot token", required=False)
    default_channel = forms.CharField(
        label="Default channel", required=False, help_text="#name or id, for the bot token."
    )

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url", "")
        if url and not url.startswith(("https://", "http://")):
            raise forms.ValidationError("An incoming webhook URL starts with https://.")
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not any(self.merged_secrets().get(n) for n in self.secret_fields):
            raise forms.ValidationError("Give an incoming webhook URL or a bot token.")
        return cleaned


class DiscordConnectionForm(ConnectionForm):
    service = "discord"
    title = "Discord"
    instructions = (
        "In the channel's settings → Integrations → Webhooks → New Webhook → Copy Webhook URL."
    )
    secret_fields = ("webhook_url",)

    webhook_url = _secret_field("Webhook URL", required=True)

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url", "")
        if url and "/api/webhooks/" not in url:
            raise forms.ValidationError(
                "A Discord webhook URL looks like https://discord.com/api/webhooks/<id>/<token>."
            )
        return url


class TelegramConnectionForm(ConnectionForm):
    service = "telegram"
    title = "Telegram"
    instructions = (
        "Talk to @BotFather on Telegram, send /newbot, and paste the token it gives "
        "(123456789:AA...)."
    )
    config_fields = ("default_chat_id",)
    secret_fields = ("bot_token",)

    bot_token = _secret_field("Bot token", required=True)
    default_chat_id = forms.CharField(
        label="Default chat id", required=False, help_text="A user, group or @channel."
    )

    def clean_bot_token(self) -> str:
        token = self.cleaned_data.get("bot_token", "")
        if token and not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", token):
            raise forms.ValidationError("A bot token looks like 123456789:AA... (from @BotFather).")
        return token


class HttpConnectionForm(ConnectionForm):
    service = "http"
    title = "HTTP"
    instructions = (
        "Headers added to every HTTP request of the flows that use this connection, such as an "
        "API key, kept secret from the steps; and an optional base URL for relative URLs."
    )
    config_fields = ("base_url",)
    secret_fields = ("headers",)

    base_url = forms.URLField(label="Base URL", required=False, assume_scheme="https")
    headers = forms.CharField(
        label="Secret headers",
        required=False,
        strip=True,
        help_text="One per line, e.g. Authorization: Bearer abc123. Replaces the saved ones.",
        widget=SecretTextarea(attrs={"rows": 3, "autocomplete": "off"}),
    )

    def clean_headers(self) -> dict[str, str]:
        parsed: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data.get("headers", "").splitlines(), 1):
            if not line.strip():
                continue
            match = HEADER_LINE.match(line.strip())
            if not match:
                raise forms.ValidationError(f"Line {number} is not of the form Name: value.")
            parsed[HEADER_SECRET_PREFIX + match["name"]] = match["value"].strip()
        return parsed

    def saved_hints(self) -> dict[str, str]:
        hints = super().saved_hints()
        names = [
            k[len(HEADER_SECRET_PREFIX) :] for k in hints if k.startswith(HEADER_SECRET_PREFIX)
        ]
        if names:
            hints["headers"] = ", ".join(
                f"{n} \u2026{hints[HEADER_SECRET_PREFIX + n]}" for n in names
            )
        return hints

    def new_secrets(self) -> dict[str, Any]:
        return dict(self.cleaned_data.get("headers") or {})

    def merged_secrets(self) -> dict[str, Any]:
        # Typed headers replace the saved set whole; an empty field keeps it.
        new = self.new_secrets()
        return new if new or not self.instance.pk else self.instance.get_secrets()


SERVICE_FORMS: dict[str, type[ConnectionForm]] = {
    form.service: form
    for form in (
        GitHubConnectionForm,
        LLMConnectionForm,
        SlackConnectionForm,
        DiscordConnectionForm,
        TelegramConnectionForm,
        HttpConnectionForm,
    )
}


def form_for(service: str) -> type[ConnectionForm]:
    """The connection form class of a service; KeyError for an unknown service."""
    return SERVICE_FORMS[service]
