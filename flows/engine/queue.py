"""Hand a run to whatever executes runs here: Celery workers, the embedded executor, or inline.

FLOWS_EXECUTOR chooses: "auto" (Celery when REDIS_URL is set, else embedded), "celery",
"embedded", or "inline" (executes at once in the caller: tests and one-off commands).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

# Time a run may spend past its soft limit cleaning up before Celery kills it.
HARD_LIMIT_GRACE_S = 30


def executor_mode() -> str:
    mode = settings.FLOWS_EXECUTOR
    if mode == "auto":
        return "celery" if settings.FLOWS_DISTRIBUTED else "embedded"
    return mode


def dispatch(run_id: int, time_limit_s: int | None = None, at: datetime | None = None) -> None:
    """Enqueue a run once the current transaction commits (so the worker can read it), to start
    at once or at `at` (a parked run); inline, execute it now, on the caller's connection."""
    token = uuid.uuid4().hex
    mode = executor_mode()
    delay = max(0.0, (at - timezone.now()).total_seconds()) if at else 0.0
    if mode == "inline":
        from flows.engine.executor import execute_run

        if delay:
            time.sleep(delay)
        execute_run(run_id, token, manage_connections=False)
        return

    def send() -> None:
        if mode == "celery":
            from flows.tasks import execute_run

            soft = int(time_limit_s or settings.FLOWS_RUN_DEFAULT_TIME_LIMIT_S)
            execute_run.apply_async(
                (run_id, token),
                soft_time_limit=soft,
                time_limit=soft + HARD_LIMIT_GRACE_S,
                countdown=delay or None,
            )
        else:
            from flows.engine import embedded

            embedded.submit(run_id, token, delay)

    transaction.on_commit(send)
