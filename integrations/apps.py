from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        # Registers every service's capabilities and blocks, and the GitHub and Telegram triggers.
        from integrations import services, triggers  # noqa: F401
