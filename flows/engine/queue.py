"""Hand a run to whatever executes runs here: Celery workers, the embedded executor, or inline.

FLOWS_EXECUTOR chooses: "auto" (Celery when REDIS_URL is set, else embedded), "celery",
"embedded", or "inline" (executes at once in the caller: tests and one-off commands).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

# Time a run may spend past its soft limit cleaning up before Celery kills it.
HARD_LIMIT_GRACE_S = 30


def executor_mode() -> str:
    mode = settings.FLOWS_EXECUTOR
    if mode == "auto":
        return "celery" if settings.FLOWS_DISTRIBUTED else "embedded"
    return mode


def dispatch(run_id: int, time_limit_s: int | None = None) -> None:
    """Enqueue a run once the current transaction commits (so the worker can read it); inline,
    execute it now, on the caller's connection."""
    token = uuid.uuid4().hex
    mode = executor_mode()
    if mode == "inline":
        from flows.engine.executor import execute_run

        execute_run(run_id, token, manage_connections=False)
        return

    def send() -> None:
        if mode == "celery":
            from flows.tasks import execute_run

            soft = int(time_limit_s or settings.FLOWS_RUN_DEFAULT_TIME_LIMIT_S)
            execute_run.apply_async(
                (run_id, token), soft_time_limit=soft, time_limit=soft + HARD_LIMIT_GRACE_S
            )
        else:
            from flows.engine import embedded

            embedded.submit(run_id, token)

    transaction.on_commit(send)
