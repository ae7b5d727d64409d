"""Celery tasks: execute a run, fire a schedule, sweep stale runs, prune old runs.

`execute_run` acknowledges its message only when done (acks_late) and hands it back when the
worker process dies (reject_on_worker_lost), so a lost run comes back to the engine, which
resumes it or fails it with the reason (see flows.engine.executor). Time limits are set per run
from its plan when it is enqueued.

Every worker also recovers lost runs itself (a thread of its main process sweeps every
FLOWS_WORKER_SWEEP_S): runs left running by a killed worker, whether its pool process or the whole
worker died, go back to the queue within a minute without `celery beat`. So do queued runs whose
message was lost with a process (`recover_lost_messages`), within FLOWS_UNSTARTED_MESSAGE_S plus a
sweep.
"""

import json
import logging
import threading
import time

from celery import shared_task
from celery.signals import worker_process_init, worker_ready
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
            task_id=f"{TASK_ID_PREFIX}{run_id}-{token}",
        )
    except BrokerUnreachable as exc:
        raise queue.QueueUnreachable(run_id) from exc


queue.register("celery", enqueue)

# Messages of execute_run are named after their run (`run-<id>-<dispatch token>`), so that the
# sweep can tell which runs have a message without decoding message bodies.
TASK_ID_PREFIX = "run-"
# The sweep reads the names of at most this many waiting, and of this many taken, messages.
LOST_MESSAGE_SCAN_MAX = 2000


def _run_of(payload: bytes | None, taken: bool = False) -> int | None:
    """The run id that a message of execute_run stored in Redis names, or None. A taken
    message is stored as [message, exchange, routing key]."""
    try:
        message = json.loads(payload) if payload else {}
        headers = (message[0] if taken else message)["headers"]
    except (TypeError, ValueError, LookupError):
        return None
    task_id = str(headers.get("id") or "")
    if headers.get("task") != execute_run.name or not task_id.startswith(TASK_ID_PREFIX):
        return None
    run_id = task_id[len(TASK_ID_PREFIX) :].split("-", 1)[0]
    return int(run_id) if run_id.isdigit() else None


def recover_lost_messages(now: float | None = None) -> dict[str, int]:
    """Queued runs whose message is gone, sent again without waiting FLOWS_RUN_STALE_S:

    - "taken": a worker took the message more than FLOWS_UNSTARTED_MESSAGE_S ago and never
      claimed the run. That worker died (a live one takes a message only for a free process,
      which claims the run at once), and Redis would hand the message out again only after its
      visibility timeout (hours). The dead worker's copy is dropped.
    - "unsent": the run was stored more than FLOWS_UNSTARTED_MESSAGE_S ago, never claimed, and
      no message names it, waiting or taken: the server died between storing the run and
      sending its message. Looked for only while few messages wait (LOST_MESSAGE_SCAN_MAX);
      beyond that the stale sweep finds them.

    A run sent twice is harmless: its first message claims it, the other finds it claimed.
    Nothing to do when the broker is not Redis."""
    from datetime import UTC, datetime

    from flows.models import Run

    counts = {"taken": 0, "unsent": 0}
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return counts
    from redis import Redis

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    unacked = options.get("unacked_key", "unacked")
    index = options.get("unacked_index_key", "unacked_index")
    now = now or time.time()
    before = now - settings.FLOWS_UNSTARTED_MESSAGE_S
    client = Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    try:
        # The waiting messages first, then the taken ones: a message moves from one to the other,
        # never back, so one read in between is seen in the second.
        waiting = None
        if client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) <= LOST_MESSAGE_SCAN_MAX:
            queued = client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, LOST_MESSAGE_SCAN_MAX)
            waiting = {_run_of(payload) for payload in queued} - {None}
        taken: dict[int, tuple[bytes, float]] = {}
        tags = client.zrange(index, 0, LOST_MESSAGE_SCAN_MAX, withscores=True)
        payloads = client.hmget(unacked, [tag for tag, _ in tags]) if tags else []
        for (tag, score), payload in zip(tags, payloads, strict=True):
            run_id = _run_of(payload, taken=True)
            if run_id is not None:
                taken[run_id] = (tag, score)
        old_taken = {run_id: tag for run_id, (tag, score) in taken.items() if score < before}
        for run in Run.objects.filter(pk__in=old_taken, status=Run.Status.QUEUED).only(
            "pk", "plan"
        ):
            queue.dispatch(run.pk, (run.plan or {}).get("time_limit_s"))
            client.pipeline().hdel(unacked, old_taken[run.pk]).zrem(
                index, old_taken[run.pk]
            ).execute()
            counts["taken"] += 1
        if waiting is not None:
            unsent = (
                Run.objects.filter(
                    status=Run.Status.QUEUED,
                    claim="",
                    created_at__lt=datetime.fromtimestamp(before, UTC),
                )
                .exclude(pk__in=waiting | set(taken))
                .only("pk", "plan")[:500]
            )
            for run in unsent:
                queue.dispatch(run.pk, (run.plan or {}).get("time_limit_s"))
                counts["unsent"] += 1
    finally:
        client.close()
    if any(counts.values()):
        logger.warning("sent again the runs of lost messages: %s", counts)
    return counts


@shared_task(name=schedule.TASK_NAME, ignore_result=True)
def fire_schedule(flow_id: int) -> str:
    return schedule.fire(flow_id)


@shared_task(name="flows.sweep_stale_runs", ignore_result=True)
def sweep_stale_runs() -> dict:
    return {**recover_lost_messages(), **executor.sweep_stale_runs()}


@shared_task(name="flows.prune_runs", ignore_result=True)
def prune_runs() -> dict:
    return retention.prune_runs()


@worker_process_init.connect
def warm_up_pool_process(**_: object) -> None:
    """Each pool process gets ready for runs before it takes its first one."""
    from flows.engine.warm import warm_up

    warm_up(serves=False, runs=True)


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
        for sweep in (recover_lost_messages, executor.sweep_stale_runs):
            try:
                sweep()
            except Exception:  # the other sweep still runs (Redis down fails only the first)
                logger.exception("sweeping for lost runs failed (%s)", sweep.__name__)
            finally:
                close_old_connections()
