"""Run history retention: finished runs older than FLOWS_RUN_RETENTION_DAYS, and beyond the
FLOWS_RUN_RETENTION_COUNT newest of each flow, are deleted with their steps and log lines; expired
key-value entries are deleted too."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from flows.models import KVEntry, Run

BATCH = 500


def _delete(ids: list[int]) -> int:
    deleted = 0
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        deleted += Run.objects.filter(pk__in=batch).delete()[1].get("flows.Run", 0)
    return deleted


def prune_runs(
    now: datetime | None = None, days: int | None = None, keep: int | None = None
) -> dict[str, int]:
    now = now or timezone.now()
    days = settings.FLOWS_RUN_RETENTION_DAYS if days is None else days
    keep = settings.FLOWS_RUN_RETENTION_COUNT if keep is None else keep
    finished = Run.objects.filter(status__in=Run.FINISHED)
    by_age = _delete(
        list(
            finished.filter(created_at__lt=now - timedelta(days=days)).values_list("pk", flat=True)
        )
    )
    by_count = 0
    flow_ids = finished.values_list("flow_id", flat=True).distinct()
    for flow_id in list(flow_ids):
        newest = finished.filter(flow_id=flow_id).order_by("-created_at", "-id")
        by_count += _delete(list(newest.values_list("pk", flat=True)[keep:]))
    expired = KVEntry.objects.filter(expires_at__lte=now).delete()[0]
    return {"by_age": by_age, "by_count": by_count, "kv_expired": expired}
