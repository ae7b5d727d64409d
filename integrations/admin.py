"""Connections in the admin: settings and test results, never the secrets themselves."""

from django.contrib import admin, messages

from integrations.models import Connection
from integrations.services import test_connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "owner", "last_test_ok", "last_tested_at", "updated_at")
    list_filter = ("service", "last_test_ok")
    search_fields = ("name", "owner__username")
    # secrets_encrypted is left out: secrets are entered through the connection forms only.
    fields = (
        "owner",
        "service",
        "name",
        "config",
        "secret_hints",
        "last_tested_at",
        "last_test_ok",
        "last_test_result",
    )
    readonly_fields = ("secret_hints", "last_tested_at", "last_test_ok", "last_test_result")
    actions = ["test_selected"]

    @admin.action(description="Test the selected connections")
    def test_selected(self, request, queryset) -> None:
        for connection in queryset:
            ok, message = test_connection(connection)
            level = messages.SUCCESS if ok else messages.ERROR
            self.message_user(request, f"{connection.name}: {message}", level)
