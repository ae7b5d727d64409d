"""Celery tasks: execute a run, fire a schedule, sweep stale runs, prune old runs.

`execute_run` acknowledges its message only when done (acks_late) and hands it back when the
worker process dies (reject_on_worker_lost), so a lost run comes back to the engine, which
resumes it or fails it with the reason (see flows.engine.executor). Time limits are set per run
from its plan when it is enqueued.

Every worker also recovers lost runs itself (a thread of its main process sweeps every
FLOWS_WORKER_SWEEP_S): runs left running by a killed worker, whether its pool process or the whole
worker died, go back to the queue within a minute without `celery beat`.
"""

import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections
from kombu.exceptions import OperationalError as BrokerUnreachable

from flows.engine import executor, queue, retention, schedule

logger = logging.getLogger(__name__)

# Time a run may spend past its soft limit cleaning up before Celery kills it.
HARD_LIMIT_GRACE_S = 30


@shared_task(
    name="flows.execute_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def execute_run(run_id: int, token: str) -> str:
    return executor.execute_run(run_id, token)


def enqueue(run_id: int, token: str, time_limit_s: int | None, delay: float) -> None:
    soft = int(time_limit_s or settings.FLOWS_RUN_DEFAULT_TIME_LIMIT_S)
    try:
        execute_run.apply_async(
            (run_id, token),
            soft_time_limit=soft,
            time_limit=soft + HARD_LIMIT_GRACE_S,
            countdown=delay or None,
        )
    except BrokerUnreachable as exc:
        raise queue.QueueUnreachable(run_id) from exc


queue.register("celery", enqueue)


@shared_task(name=schedule.TASK_NAME, ignore_result=True)
def fire_schedule(flow_id: int) -> str:
    return schedule.fire(flow_id)


@shared_task(name="flows.sweep_stale_runs", ignore_result=True)
def sweep_stale_runs() -> dict:
    return executor.sweep_stale_runs()


@shared_task(name="flows.prune_runs", ignore_result=True)
def prune_runs() -> dict:
    return retention.prune_runs()


@worker_ready.connect
def start_sweeper(**_: object) -> None:
    threading.Thread(target=_sweep_loop, name="flows-sweeper", daemon=True).start()


def _sweep_loop() -> None:
    try:
        executor.recover_local_runs()
    except Exception:  # the next sweep looks again
        logger.exception("recovering this host's runs at start-up failed")
    finally:
        close_old_connections()
    while True:
        time.sleep(settings.FLOWS_WORKER_SWEEP_S)
        try:
            executor.sweep_stale_runs()
        except Exception:
            logger.exception("sweeping stale runs failed")
        finally:
            close_old_connections()
