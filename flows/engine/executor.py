"""Execute a run: claim it, run its steps in order, record everything, finish it.

The same code runs in a Celery task (distributed mode) and in the embedded executor's threads.
Each dispatch of a run carries a fresh token. Claiming a run stores the token; when the same
token comes back while the run is `running`, the message was redelivered because the worker
executing it was lost, so the run is resumed (from the interrupted step) or, after too many
attempts, failed with that reason. Any other token finding it running is a duplicate and stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db import connection as db_connection
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from flows.engine import logs
from flows.engine.queue import dispatch
from flows.engine.steps import BoundConnection, StepOutcome, Usage, capability_callables, run_step
from flows.models import Flow, Run, StepRun

logger = logging.getLogger(__name__)

WORKER_LOST = "the worker running this flow stopped unexpectedly"
WAITING = "waiting"  # Run.claim of a run refused for lack of a free slot: the next finish wakes it
MAX_ERROR_CHARS = 8000

_claim_lock = threading.Lock()
_active: set[int] = set()
_heartbeat: dict[str, Any] = {"pid": None}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(worker: str) -> bool | None:
    """Whether the process named by a worker id lives; None when it is on another host."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _heartbeat_loop() -> None:
    interval = settings.FLOWS_RUN_HEARTBEAT_S
    while True:
        time.sleep(interval)
        ids = list(_active)
        if not ids:
            continue
        try:
            Run.objects.filter(pk__in=ids, status=Run.Status.RUNNING).update(
                heartbeat_at=timezone.now()
            )
        except Exception:  # the next beat tries again; a missed one only ages the run a little
            logger.exception("run heartbeat failed")
        finally:
            close_old_connections()


def _ensure_heartbeat() -> None:
    if _heartbeat["pid"] == os.getpid():
        return
    with _claim_lock:
        if _heartbeat["pid"] != os.getpid():
            _heartbeat["pid"] = os.getpid()
            threading.Thread(target=_heartbeat_loop, name="flows-heartbeat", daemon=True).start()


def _fail_open_steps(run: Run, reason: str) -> None:
    for step in StepRun.objects.filter(run=run, status=StepRun.Status.RUNNING):
        step.status = StepRun.Status.FAILED
        step.error = reason
        step.finished_at = timezone.now()
        step.save(update_fields=["status", "error", "finished_at"])
        transaction.on_commit(lambda s=step: logs.send(run, logs.step_event(s)))


def _mark_failed(run: Run, reason: str) -> None:
    """Inside a transaction holding the run: fail it and tell the watchers once committed."""
    _fail_open_steps(run, reason)
    run.status = Run.Status.FAILED
    run.error = reason
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    transaction.on_commit(lambda: logs.send(run, logs.run_event(run)))
    transaction.on_commit(lambda: dispatch_waiting(run.flow_id))


def claim(run_id: int, token: str) -> tuple[Run | None, str]:
    """Mark the run `running` for this token, or say why not ("missing", "finished",
    "duplicate", "waiting", "lost")."""
    with _claim_lock, transaction.atomic():
        # The flow's row first (always in this order): it serialises the slot count per flow.
        flow = (
            Flow.objects.select_for_update(of=("self",))
            .filter(runs__pk=run_id)
            .only("pk", "max_concurrency")
            .first()
        )
        if flow is None:
            return None, "missing"
        run = _claim_if_queued(run_id, token, flow.max_concurrency)
        if run is not None:
            return run, "claimed"
        # The run with its flow's running count: under the flow's lock no run can start, so the
        # count can only be too high (a run finished meanwhile): its waiters are woken below.
        running = (
            Run.objects.filter(flow_id=OuterRef("flow_id"), status=Run.Status.RUNNING)
            .order_by()
            .values("flow_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        run = (
            Run.objects.select_for_update(of=("self",))
            .annotate(running=Coalesce(Subquery(running), 0))
            .get(pk=run_id)
        )
        if run.is_finished:
            return None, "finished"
        if run.status == Run.Status.RUNNING:
            if run.claim != token:
                return None, "duplicate"
            if run.attempts >= settings.FLOWS_RUN_MAX_ATTEMPTS:
                _mark_failed(run, WORKER_LOST)
                return None, "lost"
            _fail_open_steps(run, WORKER_LOST)
        else:
            if run.running >= flow.max_concurrency:
                Run.objects.filter(pk=run.pk).update(claim=WAITING)
                # A run finishing while we counted may have looked for waiters before this
                # commit: look again once committed, so no wake-up is lost.
                transaction.on_commit(lambda: dispatch_waiting(flow.pk))
                return None, "waiting"
        now = timezone.now()
        run.status = Run.Status.RUNNING
        run.attempts += 1
        run.claim = token
        run.worker = worker_id()
        run.heartbeat_at = now
        run.started_at = run.started_at or now
        run.save(
            update_fields=["status", "attempts", "claim", "worker", "heartbeat_at", "started_at"]
        )
        return run, "claimed"


def _run_sql_names() -> tuple[str, dict[str, str]]:
    """The run table's quoted name and its columns' by field name, for hand-written statements."""
    quote = db_connection.ops.quote_name
    fields = Run._meta.concrete_fields
    return quote(Run._meta.db_table), {f.name: quote(f.column) for f in fields}


def _claim_if_queued(run_id: int, token: str, max_concurrency: int) -> Run | None:
    """The usual claim in one statement, under the flow's lock: a queued run whose flow has a
    free slot becomes running and comes back whole. None for anything else (a redelivery, a
    duplicate, a full flow), which `claim` then looks at closely."""
    table, col = _run_sql_names()
    fields = Run._meta.concrete_fields
    now = timezone.now()
    sql = (
        f"UPDATE {table} SET {col['status']} = %s, {col['attempts']} = {col['attempts']} + 1, "
        f"{col['claim']} = %s, {col['worker']} = %s, {col['heartbeat_at']} = %s, "
        f"{col['started_at']} = COALESCE({col['started_at']}, %s) "
        f"WHERE {col['id']} = %s AND {col['status']} = %s AND (SELECT COUNT(*) FROM {table} "
        f"busy WHERE busy.{col['flow']} = {table}.{col['flow']} AND busy.{col['status']} = %s) "
        f"< %s RETURNING {', '.join(col[f.name] for f in fields)}"
    )
    params = [
        Run.Status.RUNNING,
        token,
        worker_id(),
        now,
        now,
        run_id,
        Run.Status.QUEUED,
        Run.Status.RUNNING,
        max_concurrency,
    ]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    # The converters a query would apply: the field's (JSON) and the backend's (SQLite's dates).
    values = []
    for field, value in zip(fields, row, strict=True):
        column = field.get_col(Run._meta.db_table)
        converters = db_connection.ops.get_db_converters(column)
        for convert in converters + column.get_db_converters(db_connection):
            value = convert(value, column, db_connection)
        values.append(value)
    return Run.from_db(db_connection.alias, [f.attname for f in fields], values)


def _load_connections(run: Run) -> dict[int, BoundConnection]:
    from integrations.crypto import SecretsUnreadable
    from integrations.models import Connection

    ids = {
        binding["connection"]
        for step in run.plan.get("steps", [])
        for binding in (step.get("bindings") or {}).values()
        if binding.get("connection")
    }
    bound: dict[int, BoundConnection] = {}
    if not ids:
        return bound
    for connection in Connection.objects.filter(owner_id=run.flow.owner_id, pk__in=ids):
        try:
            bound[connection.pk] = BoundConnection(
                connection.service, connection.config or {}, connection.get_secrets()
            )
        except SecretsUnreadable as exc:
            bound[connection.pk] = BoundConnection(connection.service, {}, None, str(exc))
    return bound


def _secret_values(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secret_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secret_values(v)]
    return [value] if isinstance(value, str) else []


class RunExecution:
    def __init__(self, run: Run, token: str):
        self.run = run
        self.token = token
        self.plan = run.plan
        self.connections = _load_connections(run)
        self.redact = logs.Redactor(
            s for c in self.connections.values() for s in _secret_values(c.secrets or {})
        )
        self.events = logs.RunEvents(run)
        self.log = logs.RunLog(run, self.redact, self.events)

    def context(self, steps: dict[str, Any], step_id: str) -> dict[str, Any]:
        return {
            "event": self.run.event,
            "settings": self.plan.get("settings", {}),
            "steps": steps,
            "run": {
                "flow_id": self.run.flow_id,
                "run_id": self.run.pk,
                "step": step_id,
                "trigger": self.run.trigger,
                "attempt": self.run.attempts,
            },
        }

    def execute(self) -> None:
        run = self.run
        self.events.add(logs.run_event(run))
        done: dict[str, StepRun] = {}
        attempts: dict[str, int] = {}
        if run.attempts > 1:
            for step_run in StepRun.objects.filter(run=run).order_by("position", "attempt"):
                attempts[step_run.step_id] = step_run.attempt
                if step_run.status == StepRun.Status.SUCCEEDED:
                    done[step_run.step_id] = step_run
            self.log.write(
                "",
                "warning",
                f"attempt {run.attempts}: resuming after {WORKER_LOST}"
                + (f"; {len(done)} finished step(s) kept" if done else ""),
            )
        outputs: dict[str, Any] = {}
        status, error, output = Run.Status.SUCCEEDED, "", None
        for step in self.plan.get("steps", []):
            if step["id"] in done:
                outputs[step["id"]] = output = done[step["id"]].output
                continue
            outcome = self.run_with_retries(step, outputs, attempts.get(step["id"], 0) + 1)
            if outcome.status == "failed":
                status, error = Run.Status.FAILED, f"step '{step['id']}': {outcome.error}"
                break
            outputs[step["id"]] = output = outcome.output
            if outcome.status == "skipped":
                status, error = Run.Status.SKIPPED, f"step '{step['id']}': {outcome.skip_reason}"
                self.log.write(step["id"], "info", f"run skipped: {outcome.skip_reason}")
                break
        self.finish(status, error, output)

    def run_with_retries(
        self, step: dict[str, Any], outputs: dict[str, Any], attempt: int
    ) -> StepOutcome:
        policy = step.get("retry") or {"max_attempts": 1, "backoff_s": 0}
        tries = 0
        while True:
            tries += 1
            outcome = self.run_once(step, outputs, attempt)
            if (
                outcome.status != "failed"
                or not outcome.retryable
                or tries >= policy["max_attempts"]
            ):
                return outcome
            delay = min(
                policy["backoff_s"] * 2 ** (tries - 1), settings.FLOWS_STEP_RETRY_BACKOFF_MAX_S
            )
            self.log.write(
                step["id"],
                "warning",
                f"attempt {attempt} failed ({self.redact(outcome.error)}); retrying in {delay:g} s",
            )
            time.sleep(delay)
            attempt += 1

    def run_once(self, step: dict[str, Any], outputs: dict[str, Any], attempt: int) -> StepOutcome:
        step_run = StepRun(
            run=self.run,
            step_id=step["id"],
            position=step["position"],
            kind=step["kind"],
            status=StepRun.Status.RUNNING,
            attempt=attempt,
            started_at=timezone.now(),
        )
        # Logic blocks finish in microseconds and cannot hang: their row is written (and their
        # status sent) once, done. Other steps are on record while they run, so a lost worker's
        # step shows as failed.
        durable = step["category"] != "logic"
        if durable:
            step_run.save(force_insert=True)
            self.events.flush(logs.step_event(step_run))
        usage = Usage()
        log = self.log.for_step(step["id"])
        callables = capability_callables(
            step,
            flow_id=self.run.flow_id,
            run_id=self.run.pk,
            connections=self.connections,
            log=log,
            usage=usage,
        )
        outcome = run_step(step, self.context(dict(outputs), step["id"]), callables, log)
        step_run.status = {
            "succeeded": StepRun.Status.SUCCEEDED,
            "skipped": StepRun.Status.SUCCEEDED,
            "failed": StepRun.Status.FAILED,
        }[outcome.status]
        step_run.input = outcome.input
        step_run.output = outcome.output
        step_run.error = self.redact(outcome.error)[:MAX_ERROR_CHARS]
        step_run.duration_ms = outcome.duration_ms
        step_run.fuel_used = outcome.fuel_used
        step_run.tokens = usage.totals
        step_run.finished_at = timezone.now()
        if durable:
            step_run.save(
                update_fields=[
                    "status",
                    "input",
                    "output",
                    "error",
                    "duration_ms",
                    "fuel_used",
                    "tokens",
                    "finished_at",
                ]
            )
        else:
            step_run.save(force_insert=True)
        self.events.add(logs.step_event(step_run))
        outcome.error = step_run.error
        return outcome

    def finish(self, status: str, error: str, output: Any) -> None:
        run = self.run
        run.status, run.output, run.finished_at = status, output, timezone.now()
        run.error = self.redact(error)[:MAX_ERROR_CHARS]
        waiters = _store_finish(run, self.token)
        if waiters is None:
            self.events.flush()
            return  # the sweeper decided this run's fate while it was running
        self.events.flush(logs.run_event(run))
        if waiters:
            dispatch_waiting(run.flow_id)


def _store_finish(run: Run, token: str) -> bool | None:
    """Store a run's final state if `token` still holds it (None if not), and say in the same
    statement whether runs of its flow wait for a slot: one round trip on every run, not two."""
    table, col = _run_sql_names()
    sql = (
        f"UPDATE {table} SET {col['status']} = %s, {col['error']} = %s, {col['output']} = %s, "
        f"{col['finished_at']} = %s WHERE {col['id']} = %s AND {col['status']} = %s "
        f"AND {col['claim']} = %s RETURNING EXISTS (SELECT 1 FROM {table} waiting "
        f"WHERE waiting.{col['flow']} = {table}.{col['flow']} AND waiting.{col['status']} = %s "
        f"AND waiting.{col['claim']} = %s)"
    )
    params = [
        run.status,
        run.error,
        Run._meta.get_field("output").get_db_prep_save(run.output, db_connection),
        Run._meta.get_field("finished_at").get_db_prep_save(run.finished_at, db_connection),
        run.pk,
        Run.Status.RUNNING,
        token,
        Run.Status.QUEUED,
        WAITING,
    ]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def execute_run(run_id: int, token: str, manage_connections: bool = True) -> str:
    """Claim and execute one run; returns what happened ("done", "waiting", "duplicate", ...).

    Worker threads and processes drop stale database connections around each run; inline
    execution uses the caller's connection as it is.
    """
    if manage_connections:
        close_old_connections()
    try:
        run, outcome = claim(run_id, token)
        if run is None:
            return outcome
        _ensure_heartbeat()
        _active.add(run.pk)
        try:
            execution = RunExecution(run, token)
            try:
                execution.execute()
            except Exception as exc:
                logger.exception("run %s failed inside the engine", run.pk)
                execution.finish(Run.Status.FAILED, _describe_crash(exc, run), None)
        finally:
            _active.discard(run.pk)
        return "done"
    finally:
        if manage_connections:
            close_old_connections()


def _describe_crash(exc: Exception, run: Run) -> str:
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return _over_time_limit(run.plan.get("time_limit_s"))
    return f"the engine failed: {type(exc).__name__}: {exc}"


def _over_time_limit(limit: Any) -> str:
    return f"the run exceeded its time limit of {limit} s"


def dispatch_waiting(flow_id: int) -> int:
    """Hand runs that waited for a free slot of their flow back to the executor."""
    waiting_runs = Run.objects.filter(flow_id=flow_id, status=Run.Status.QUEUED, claim=WAITING)
    if not waiting_runs.exists():
        return 0
    with transaction.atomic():
        flow = (
            Flow.objects.select_for_update()
            .filter(pk=flow_id)
            .only("pk", "max_concurrency")
            .first()
        )
        if flow is None:
            return 0
        free = (
            flow.max_concurrency
            - Run.objects.filter(flow_id=flow_id, status=Run.Status.RUNNING).count()
        )
        if free <= 0:
            return 0
        waiting = list(
            waiting_runs.order_by("created_at", "id").values_list("pk", "plan__time_limit_s")[:free]
        )
        Run.objects.filter(pk__in=[pk for pk, _ in waiting]).update(claim="")
    for pk, limit in waiting:
        dispatch(pk, limit)
    return len(waiting)


def recover(run_id: int, reason: str = WORKER_LOST) -> str:
    """A running run lost its worker: queue it again, or fail it after too many attempts."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, status=Run.Status.RUNNING).first()
        if run is None:
            return "gone"
        if run.attempts >= settings.FLOWS_RUN_MAX_ATTEMPTS:
            _mark_failed(run, reason)
            return "failed"
        _fail_open_steps(run, reason)
        run.status, run.claim, run.worker = Run.Status.QUEUED, "", ""
        run.save(update_fields=["status", "claim", "worker"])
        transaction.on_commit(lambda: dispatch(run.pk, run.plan.get("time_limit_s")))
    return "requeued"


def sweep_stale_runs(now=None) -> dict[str, int]:
    """Recover runs whose worker died; re-dispatch queued runs whose message was lost."""
    from datetime import timedelta

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.FLOWS_RUN_STALE_S)
    counts = {"requeued": 0, "failed": 0, "redispatched": 0}
    for run in Run.objects.filter(status=Run.Status.RUNNING).only(
        "pk", "worker", "heartbeat_at", "started_at", "plan"
    ):
        alive = _pid_alive(run.worker)
        beat = run.heartbeat_at or run.started_at or now
        limit = (run.plan or {}).get("time_limit_s") or 0
        if run.started_at and limit and run.started_at + timedelta(seconds=limit * 2) < now:
            with transaction.atomic():
                locked = (
                    Run.objects.select_for_update()
                    .filter(pk=run.pk, status=Run.Status.RUNNING)
                    .first()
                )
                if locked:
                    _mark_failed(locked, _over_time_limit(limit))
                    counts["failed"] += 1
            continue
        if alive is False or (alive is None and beat < stale):
            outcome = recover(run.pk)
            if outcome in counts:
                counts[outcome] += 1
    for run in Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=stale).only(
        "pk", "flow_id", "plan"
    )[:500]:
        dispatch(run.pk, (run.plan or {}).get("time_limit_s"))
        counts["redispatched"] += 1
    return counts


def recover_local_runs() -> int:
    """At start-up: runs left running by dead processes of this host go back to the queue."""
    recovered = 0
    for run in Run.objects.filter(status=Run.Status.RUNNING).only("pk", "worker"):
        if _pid_alive(run.worker) is False:
            recover(run.pk)
            recovered += 1
    return recovered
