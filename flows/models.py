"""Flows, their immutable deployed versions, runs, step runs, log lines and key-value entries.

Every queryset a view touches goes through `owned_by(user)`, so a view cannot forget the scoping.
"""

import hashlib
import json
import secrets
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import slugify


def new_token() -> str:
    return secrets.token_urlsafe(24)


def document_hash(document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class OwnedQuerySet(models.QuerySet):
    """`owned_by(user)`: the rows whose `owner_path` leads to the user (none for anonymous)."""

    owner_path = "owner"

    def owned_by(self, user) -> Self:
        if not user.is_authenticated:
            return self.none()
        return self.filter(**{self.owner_path: user})


class FlowQuerySet(OwnedQuerySet):
    def unique_slug(self, owner, name: str) -> str:
        """A slug for `name` that none of `owner`'s flows has yet ("review-bot-2")."""
        base = slugify(name)[:180] or "flow"
        taken = set(self.filter(owner=owner, slug__startswith=base).values_list("slug", flat=True))
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        return slug


class Flow(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows"
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    description = models.TextField(blank=True)
    document = models.JSONField(default=dict, help_text="The draft flow document.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    current_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Unguessable path segment of the generic webhook URL.
    webhook_token = models.CharField(max_length=64, unique=True, default=new_token)
    # HMAC secret the user enters in GitHub's webhook settings.
    webhook_secret = models.CharField(max_length=64, default=new_token)
    max_concurrency = models.PositiveIntegerField(default=4)
    template = models.CharField(
        max_length=100, blank=True, help_text="Template this flow was cloned from."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlowQuerySet.as_manager()

    def version_named(self, wanted: Any) -> "FlowVersion | None":
        """The version a `flow.call` names: "latest" (the current one) or a number."""
        wanted = str(wanted or "latest").strip()
        if wanted == "latest":
            return self.current_version
        return self.versions.filter(number=int(wanted)).first() if wanted.isdigit() else None

    def save(self, *args, **kwargs):
        from flows.document import seal_settings

        # Secret settings are stored encrypted, whatever path the draft came by.
        self.document = seal_settings(self.document)
        super().save(*args, **kwargs)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "slug"], name="flow_slug_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class FlowVersionQuerySet(OwnedQuerySet):
    owner_path = "flow__owner"


class FlowVersion(models.Model):
    """A deployed, immutable plan compiled from a flow document."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    plan = models.JSONField()
    content_hash = models.CharField(max_length=64)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FlowVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="version_number_per_flow")
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("A flow version is immutable once saved.")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"


class RunQuerySet(OwnedQuerySet):
    owner_path = "flow__owner"


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"
        # Finished, but a step failed and the flow went on along that step's error path.
        SUCCEEDED_WITH_ERRORS = "succeeded_with_errors", "Succeeded with errors"
        # Parked by a wait (or a retry's backoff) until `resume_at`; holds no worker meanwhile.
        WAITING = "waiting", "Waiting"

    FINISHED = {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.SKIPPED,
        Status.CANCELLED,
        Status.SUCCEEDED_WITH_ERRORS,
    }

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    # Null for a test run of the draft document (then `document` holds what was run).
    version = models.ForeignKey(
        FlowVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    plan = models.JSONField(default=dict, help_text="The plan this run executes.")
    trigger = models.CharField(max_length=32)
    event = models.JSONField(default=dict)
    delivery_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    output = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Token of the dispatch that executes it (or "waiting" while its flow has no free slot).
    claim = models.CharField(max_length=64, blank=True)
    # host:pid of the process executing it, and when that process last showed it was alive.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    # The answer an `http.respond` step set for the webhook caller who waits.
    response = models.JSONField(null=True, blank=True)
    resume_at = models.DateTimeField(null=True, blank=True)
    # The value of the flow's concurrency key for this run (see the plan's "concurrency").
    concurrency_key = models.CharField(max_length=200, blank=True)
    cancelled_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="cancelled"
    )
    # The run (and its step) that started this one: a `flow.call`, or a failed run's error flow.
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    parent_step = models.CharField(max_length=100, blank=True)
    depth = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["flow", "status"], name="run_flow_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "delivery_id"],
                condition=~models.Q(delivery_id=""),
                name="one_run_per_delivery",
            )
        ]

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() * 1000
        return None


class StepRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        WAITING = "waiting", "Waiting"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=100)
    # Which loop iteration the step ran in: "" outside loops, "files[3]" in item 3 of loop
    # `files`, "files[3]/lines[0]" nested.
    scope = models.CharField(max_length=200, blank=True, default="")
    # The output port the step finished on ("out", "true", a case, "error"); "" while running.
    port = models.CharField(max_length=100, blank=True, default="")
    resume_at = models.DateTimeField(null=True, blank=True)
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0)
    fuel_used = models.BigIntegerField(default=0)
    tokens = models.JSONField(default=dict, blank=True, help_text="LLM token usage of this step.")
    trace = models.JSONField(
        default=list, blank=True, help_text="An agent's model turns and tool calls, in order."
    )
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "attempt"]


class LogLine(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    # Position within the run: live clients use it to drop lines they already have.
    seq = models.PositiveIntegerField()
    step_id = models.CharField(max_length=100, blank=True)
    time = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="log_seq_per_run")]


class KVEntry(models.Model):
    """A flow's key-value store entry; expired entries read as missing."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="kv_entries")
    key = models.CharField(max_length=512)
    value = models.JSONField()
    # Bytes of the value as JSON: what counts against its owner's storage.
    size = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "key"], name="kv_key_per_flow")]


class Artifact(models.Model):
    """An uploaded Wasm module; its bytes live in the content-addressed artifact store."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="artifacts"
    )
    digest = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=200)
    size = models.PositiveIntegerField()
    imports = models.JSONField(default=list, help_text="Capabilities the module imports.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "digest"], name="artifact_per_owner")
        ]
