"""One module per outside service, all on the shared HTTP path of `base`.

Importing this package registers every service's capabilities and blocks (IntegrationsConfig.ready
does). `test_connection` makes one cheap real call with a connection's credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from flows.capabilities import CapabilityError
from flows.crypto import SecretsUnreadable
from integrations.redaction import redact, secret_values
from integrations.services import discord, github, http, llm, slack, telegram


@dataclass(frozen=True)
class Service:
    key: str
    title: str
    # test(config, secrets) -> message, or (ok, message); raises CapabilityError on failure.
    test: Callable[[dict, dict], str | tuple[bool, str]]


SERVICES: dict[str, Service] = {
    s.key: s
    for s in (
        Service("github", "GitHub", github.test),
        Service("llm", "LLM (OpenAI-compatible)", llm.test),
        Service("slack", "Slack", slack.test),
        Service("discord", "Discord", discord.test),
        Service("telegram", "Telegram", telegram.test),
        Service("http", "HTTP", http.test),
    )
}


def test_connection(connection) -> tuple[bool, str]:
    """Try the connection against its service, record the outcome on it, and say it in words."""
    service = SERVICES.get(connection.service)
    secrets: dict = {}
    if service is None:
        ok, message = False, f"Flowbuilder has no service called {connection.service!r}."
    else:
        try:
            secrets = connection.get_secrets()
            answer = service.test(connection.config or {}, secrets)
            ok, message = answer if isinstance(answer, tuple) else (True, answer)
        except (CapabilityError, SecretsUnreadable) as exc:
            ok, message = False, str(exc)
    message = redact(message, secret_values(secrets))
    if connection.pk is not None:
        connection.last_tested_at = timezone.now()
        connection.last_test_ok = ok
        connection.last_test_result = message
        connection.save(update_fields=["last_tested_at", "last_test_ok", "last_test_result"])
    return ok, message
