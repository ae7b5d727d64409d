from datetime import UTC, datetime

import pytest
from django_celery_beat.models import PeriodicTask

from flows.compiler import deploy
from flows.engine import pause_flow, resume_flow
from flows.engine.schedule import Scheduler, fire, task_name
from flows.models import Run

from .conftest import document

pytestmark = pytest.mark.django_db

SCHEDULED = document(
    trigger={
        "kind": "trigger.schedule",
        "config": {"cron": "*/15 9-17 * * 1-5", "timezone": "Europe/Paris"},
    },
    steps=[
        {
            "id": "say",
            "kind": "logic.template",
            "config": {"template": "due {{ event.scheduled_at }}"},
        }
    ],
    edges=[],
)


def test_deploying_a_schedule_creates_its_periodic_task_and_pausing_disables_it(make_flow, user):
    flow = make_flow(SCHEDULED)
    task = PeriodicTask.objects.get(name=task_name(flow.pk))
    assert task.task == "flows.fire_schedule" and task.args == f"[{flow.pk}]"
    assert task.enabled
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "*/15",
        "9-17",
        "*",
        "*",
        "1-5",
    )
    assert str(cron.timezone) == "Europe/Paris"

    pause_flow(flow)
    assert not PeriodicTask.objects.get(name=task_name(flow.pk)).enabled
    resume_flow(flow)
    assert PeriodicTask.objects.get(name=task_name(flow.pk)).enabled

    flow.document = document()
    flow.save()
    deploy(flow, user)
    assert not PeriodicTask.objects.filter(name=task_name(flow.pk)).exists()


def test_the_embedded_scheduler_fires_due_schedules_once_per_due_time(make_flow):
    flow = make_flow(SCHEDULED)
    # Monday 2026-11-23, 08:59 UTC is 09:59 in Paris; 09:00 UTC is 10:00, a due time.
    scheduler = Scheduler(now=datetime(2026, 11, 23, 8, 59, 30, tzinfo=UTC))
    assert scheduler.tick(datetime(2026, 11, 23, 8, 59, 50, tzinfo=UTC)) == []
    assert scheduler.tick(datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)) == [flow.pk]
    assert scheduler.tick(datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC)) == []
    run = Run.objects.get(flow=flow)
    assert run.trigger == "schedule"
    assert run.event == {"scheduled_at": "2026-11-23T09:00:00+00:00"}
    assert run.delivery_id == "schedule:2026-11-23T09:00:00+00:00"
    run.refresh_from_db()
    assert run.output == {"text": "due 2026-11-23T09:00:00+00:00"}

    # Beat firing the same due time too (a second scheduler) runs nothing more.
    assert fire(flow.pk, datetime(2026, 11, 23, 9, 0, tzinfo=UTC)) == "already started"
    assert Run.objects.filter(flow=flow).count() == 1


def test_a_paused_schedule_does_not_fire(make_flow):
    flow = make_flow(SCHEDULED)
    pause_flow(flow)
    scheduler = Scheduler(now=datetime(2026, 11, 23, 8, 59, 30, tzinfo=UTC))
    assert scheduler.tick(datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)) == []
    assert fire(flow.pk) == "not active"
    assert not Run.objects.exists()
