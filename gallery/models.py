"""The gallery's copy of the templates shipped in flow_templates/, refreshed by load_templates."""

from django.db import models


class Template(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Position in the gallery: the flagship first.
    position = models.PositiveIntegerField(default=0)
    trigger = models.CharField(max_length=100, help_text="Trigger block kind.")
    services = models.JSONField(default=list, help_text="Connection services the flow needs.")
    settings = models.JSONField(default=list, help_text="[{name, description, default, required}]")
    document = models.JSONField(help_text="The flow document, step sources inlined.")
    content_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.name
