from django.contrib import admin

from flows.models import Artifact, Flow, FlowVersion, KVEntry, LogLine, Run, StepRun


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "slug", "status", "current_version", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "slug", "owner__username")
    readonly_fields = ("webhook_token", "webhook_secret", "current_version")


@admin.register(FlowVersion)
class FlowVersionAdmin(admin.ModelAdmin):
    list_display = ("flow", "number", "author", "note", "created_at")
    readonly_fields = [f.name for f in FlowVersion._meta.fields]


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    fields = (
        "position",
        "step_id",
        "kind",
        "status",
        "attempt",
        "duration_ms",
        "fuel_used",
        "error",
    )
    readonly_fields = fields


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "flow", "trigger", "status", "attempts", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    search_fields = ("flow__name", "delivery_id")
    readonly_fields = [f.name for f in Run._meta.fields]
    inlines = [StepRunInline]


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "step_id", "level", "message", "time")
    list_filter = ("level",)


@admin.register(KVEntry)
class KVEntryAdmin(admin.ModelAdmin):
    list_display = ("flow", "key", "expires_at", "updated_at")
    search_fields = ("key",)


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "digest", "size", "created_at")
    search_fields = ("name", "digest")
