from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        # Registers every service's capabilities and blocks, and the GitHub and Telegram triggers.
        from flows import connections
        from integrations import services, triggers  # noqa: F401
        from integrations.lookup import ConnectionLookup

        connections.register(ConnectionLookup())
