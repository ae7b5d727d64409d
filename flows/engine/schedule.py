"""Schedule triggers: one django-celery-beat PeriodicTask (with its CrontabSchedule) per flow.

The PeriodicTask rows are the single record of what is scheduled, kept in sync whenever a flow's
status or deployed version changes. In distributed mode `celery beat` reads them; in embedded
mode `Scheduler` (a thread of the server process, see flows.engine.embedded) reads the same rows
and fires what is due. Both name each firing with a delivery id built from its due time, so a
schedule fired twice (two servers, a beat restart) still runs once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from django.utils import timezone

from flows.models import Flow

logger = logging.getLogger(__name__)

TASK_NAME = "flows.fire_schedule"


def task_name(flow_id: int) -> str:
    return f"flow-{flow_id}-schedule"


def _schedule_config(flow: Flow) -> dict | None:
    version = flow.current_version
    if version is None:
        return None
    trigger = version.plan.get("trigger") or {}
    return trigger.get("config") if trigger.get("kind") == "trigger.schedule" else None


def sync_schedule(flow: Flow) -> None:
    """Create, update, enable, disable or delete the flow's PeriodicTask to match the flow."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    config = _schedule_config(flow)
    if config is None:
        PeriodicTask.objects.filter(name=task_name(flow.pk)).delete()
        return
    minute, hour, day_of_month, month_of_year, day_of_week = config["cron"].split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=config.get("timezone") or "UTC",
    )
    PeriodicTask.objects.update_or_create(
        name=task_name(flow.pk),
        defaults={
            "task": TASK_NAME,
            "crontab": crontab,
            "interval": None,
            "args": json.dumps([flow.pk]),
            "enabled": flow.status == Flow.Status.ACTIVE,
            "description": f"Schedule trigger of flow {flow.pk} ({flow.name})",
        },
    )


def cron_expression(crontab) -> str:
    return " ".join(
        str(x)
        for x in (
            crontab.minute,
            crontab.hour,
            crontab.day_of_month,
            crontab.month_of_year,
            crontab.day_of_week,
        )
    )


def last_due(cron: str, tz: str, now: datetime) -> datetime:
    """The latest time at or before `now` the expression matches."""
    local = now.astimezone(ZoneInfo(tz or "UTC"))
    return croniter(cron, local + timedelta(seconds=1)).get_prev(datetime)


def fire(flow_id: int, due: datetime | None = None) -> str:
    """Start the scheduled run of a flow for the given due time (default: the latest one)."""
    from flows.engine import FlowNotDeployed, FlowPaused, start_run

    flow = Flow.objects.select_related("current_version").filter(pk=flow_id).first()
    config = _schedule_config(flow) if flow else None
    if config is None:
        return "not scheduled"
    if due is None:
        due = last_due(config["cron"], config.get("timezone"), timezone.now())
    stamp = due.astimezone(ZoneInfo("UTC")).replace(second=0, microsecond=0).isoformat()
    try:
        run, created = start_run(
            flow,
            trigger="schedule",
            event={"scheduled_at": stamp},
            delivery_id=f"schedule:{stamp}",
        )
    except (FlowPaused, FlowNotDeployed) as exc:
        logger.info("schedule of flow %s not fired: %s", flow_id, exc)
        return "not active"
    return "started" if created else "already started"


class Scheduler:
    """Fires the enabled schedules whose due time passed since the previous tick."""

    def __init__(self, now: datetime | None = None):
        self.last = now or timezone.now()

    def tick(self, now: datetime | None = None) -> list[int]:
        from django_celery_beat.models import PeriodicTask

        now = now or timezone.now()
        fired = []
        tasks = PeriodicTask.objects.filter(task=TASK_NAME, enabled=True).select_related("crontab")
        for task in tasks:
            if task.crontab is None:
                continue
            cron, tz = cron_expression(task.crontab), str(task.crontab.timezone)
            due = last_due(cron, tz, now)
            if due > self.last:
                flow_id = json.loads(task.args)[0]
                fire(flow_id, due)
                fired.append(flow_id)
        self.last = now
        return fired


def _flow_saved(sender, instance: Flow, update_fields=None, **kwargs) -> None:
    # Draft edits save only the document: nothing about the schedule can have changed.
    if update_fields is not None and not {"status", "current_version"} & set(update_fields):
        return
    sync_schedule(instance)


def _flow_deleted(sender, instance: Flow, **kwargs) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=task_name(instance.pk)).delete()


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_flow_saved, sender=Flow, dispatch_uid="flows-schedule-sync")
    post_delete.connect(_flow_deleted, sender=Flow, dispatch_uid="flows-schedule-delete")
