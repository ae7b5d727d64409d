from django.core.management.base import BaseCommand

from flows.engine.retention import prune_runs


class Command(BaseCommand):
    help = (
        "Delete finished runs older than FLOWS_RUN_RETENTION_DAYS, and beyond the "
        "FLOWS_RUN_RETENTION_COUNT newest of each flow."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="Override FLOWS_RUN_RETENTION_DAYS.")
        parser.add_argument("--keep", type=int, help="Override FLOWS_RUN_RETENTION_COUNT.")

    def handle(self, *args, **options) -> None:
        counts = prune_runs(days=options["days"], keep=options["keep"])
        self.stdout.write(
            f"Deleted {counts['by_age']} run(s) past the retention age and "
            f"{counts['by_count']} beyond the per-flow count."
        )
