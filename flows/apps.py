from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        # Registers the core blocks, the agent and the kv.* capabilities, and the three ways runs
        # are executed (inline, embedded threads, Celery); keeps schedules in sync with flows.
        from flows import agent, blocks, tasks  # noqa: F401
        from flows.engine import embedded, schedule

        schedule.connect_signals()
        embedded.maybe_start_scheduler()
        embedded.maybe_warm_up()
