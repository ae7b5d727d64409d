"""Hand a run to whatever executes runs here: Celery workers, the embedded executor, or inline.

FLOWS_EXECUTOR chooses: "auto" (Celery when REDIS_URL is set, else embedded), "celery",
"embedded", or "inline" (executes at once in the caller: tests and one-off commands).

A run whose caller waits for its answer may be dispatched `here`: with Celery, a server process
then executes it in its own threads when one of its FLOWS_SERVER_RUNS slots is free (the
"here" backend, flows.engine.embedded), and queues it as usual when none is.
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


def backend(mode: str) -> Backend:
    found = _backends.get(mode)
    if found is None:
        raise RuntimeError(f"FLOWS_EXECUTOR: no executor '{mode}' is installed here")
    return found


def dispatch(
    run_id: int, time_limit_s: int | None = None, at: datetime | None = None, here: bool = False
) -> None:
    """Enqueue a run once the current transaction commits (so the worker can read it), to start
    at once or at `at` (a parked run); inline, execute it now, on the caller's connection.
    `here`: its caller waits in this process, so this process may execute it (see above)."""
    token = uuid.uuid4().hex
    mode = executor_mode()
    chosen = backend(mode)
    if here and at is None and mode == "celery" and settings.FLOWS_SERVER_RUNS:
        chosen = _backends.get("here", chosen)
    delay = max(0.0, (at - timezone.now()).total_seconds()) if at else 0.0
    if mode == "inline":
        chosen(run_id, token, time_limit_s, delay)
        return
    transaction.on_commit(lambda: chosen(run_id, token, time_limit_s, delay))
