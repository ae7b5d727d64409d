from django.core.management.base import BaseCommand, CommandError

from gallery.registry import TemplateError, load_templates


class Command(BaseCommand):
    help = "Load the template bots in flow_templates/ into the gallery (safe to repeat)."

    def handle(self, *args, **options) -> None:
        try:
            report = load_templates()
        except TemplateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(report))
