from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _load_after_migrate(sender, using: str = "default", **kwargs) -> None:
    from gallery.registry import load_templates

    load_templates(using=using)


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Template gallery"

    def ready(self) -> None:
        # Like content types: every migrate (set-up, test databases) leaves the gallery loaded.
        post_migrate.connect(_load_after_migrate, sender=self, dispatch_uid="gallery-load")
