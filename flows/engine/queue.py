"""Hand a run to whatever executes runs here: Celery workers, the embedded executor, or inline.

FLOWS_EXECUTOR chooses: "auto" (Celery when REDIS_URL is set, else embedded), "celery",
"embedded", or "inline" (executes at once in the caller: tests and one-off commands).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone


class QueueUnreachable(Exception):
    """The run is stored as queued but could not be handed to the queue (the broker is down);
    the recovery sweep sends it again later."""

    def __init__(self, run_id: int):
        super().__init__(f"run {run_id} is stored but the run queue is unreachable")
        self.run_id = run_id


def executor_mode() -> str:
    mode = settings.FLOWS_EXECUTOR
    if mode == "auto":
        return "celery" if settings.FLOWS_DISTRIBUTED else "embedded"
    return mode


# A backend takes (run id, dispatch token, the run's time limit, seconds to wait before it starts).
Backend = Callable[[int, str, int | None, float], None]
_backends: dict[str, Backend] = {}


def register(mode: str, backend: Backend) -> None:
    """Called by each executor at import: the executor (inline), flows.tasks (celery) and the
    embedded executor, so that this module, which every part of the engine uses to enqueue,
    imports none of them."""
    _backends[mode] = backend


def dispatch(run_id: int, time_limit_s: int | None = None, at: datetime | None = None) -> None:
    """Enqueue a run once the current transaction commits (so the worker can read it), to start
    at once or at `at` (a parked run); inline, execute it now, on the caller's connection."""
    token = uuid.uuid4().hex
    mode = executor_mode()
    backend = _backends.get(mode)
    if backend is None:
        raise RuntimeError(f"FLOWS_EXECUTOR: no executor '{mode}' is installed here")
    delay = max(0.0, (at - timezone.now()).total_seconds()) if at else 0.0
    if mode == "inline":
        backend(run_id, token, time_limit_s, delay)
        return
    transaction.on_commit(lambda: backend(run_id, token, time_limit_s, delay))
