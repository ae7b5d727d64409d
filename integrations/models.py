"""A user's credentials for one service, encrypted at rest and reused by many flows."""

from django.conf import settings
from django.db import models

from flows import crypto
from flows.models import OwnedQuerySet


class Connection(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections"
    )
    service = models.CharField(
        max_length=32
    )  # "github", "llm", "slack", "discord", "telegram", "http"
    name = models.CharField(max_length=100)
    # Non-secret settings: base URL, default model, chat id, ...
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True)
    # Last four characters of each secret, the only part ever shown again.
    secret_hints = models.JSONField(default=dict, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_result = models.TextField(blank=True)
    last_test_ok = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["service", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="connection_name_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.service})"

    def get_secrets(self) -> dict:
        return crypto.decrypt_json(self.secrets_encrypted)

    def set_secrets(self, secrets: dict) -> None:
        self.secrets_encrypted = crypto.encrypt_json(secrets)
        self.secret_hints = {k: str(v)[-4:] for k, v in secrets.items() if v}
