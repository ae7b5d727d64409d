import json

from django.db import migrations, models


def measure(apps, schema_editor):
    """Entries stored before sizes were kept count with their real size."""
    KVEntry = apps.get_model("flows", "KVEntry")
    for entry in KVEntry.objects.all().only("pk", "value").iterator():
        size = len(json.dumps(entry.value, separators=(",", ":")).encode())
        KVEntry.objects.filter(pk=entry.pk).update(size=size)


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0003_flow_language"),
    ]

    operations = [
        migrations.AddField(
            model_name="kventry",
            name="size",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(measure, migrations.RunPython.noop),
    ]
