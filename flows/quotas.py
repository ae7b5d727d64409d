"""Per-owner quotas on runs started from outside (webhooks): how many in the last minute, and how
many queued or running at once (FLOWS_OWNER_RUNS_PER_MINUTE, FLOWS_OWNER_CONCURRENT_RUNS; 0 turns
one off). One owner's flood then waits at the door instead of in front of everyone's runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from flows.models import Run


@dataclass(frozen=True)
class OverQuota:
    message: str
    retry_after_s: int


def check(owner_id: int) -> OverQuota | None:
    """Why the owner may not start another run now, or None. Both counts come from one query."""
    per_minute = settings.FLOWS_OWNER_RUNS_PER_MINUTE
    concurrent = settings.FLOWS_OWNER_CONCURRENT_RUNS
    if not per_minute and not concurrent:
        return None
    since = timezone.now() - timedelta(seconds=60)
    recent = Q(created_at__gte=since)
    active = Q(status__in=(Run.Status.QUEUED, Run.Status.RUNNING))
    wanted = (recent if per_minute else Q()) | (active if concurrent else Q())
    counts = Run.objects.filter(wanted, flow__owner_id=owner_id).aggregate(
        started=Count("pk", filter=recent), active=Count("pk", filter=active)
    )
    started = counts["started"]
    if per_minute and started >= per_minute:
        return OverQuota(
            f"Too many runs: this flow's owner started {started} in the last minute, and "
            f"the limit is {per_minute} a minute. Try again in a minute.",
            60,
        )
    active_now = counts["active"]
    if concurrent and active_now >= concurrent:
        return OverQuota(
            f"Too many runs at once: this flow's owner has {active_now} queued or running, and "
            f"the limit is {concurrent}. Try again when some have finished.",
            10,
        )
    return None
