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
import uuid
from typing import Any, NamedTuple

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db import connection as db_connection
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from flows import connections, templating
from flows.connections import BoundConnection
from flows.crypto import SecretsUnreadable
from flows.document import SEALED, unseal
from flows.engine import logs, queue
from flows.engine.graph import Walker
from flows.engine.queue import dispatch
from flows.engine.runs import (
    WAITING,
    create_run,
    dispatch_waiting,
    dispatch_waiting_for_owner,
    start_error_flow,
)
from flows.engine.steps import StepOutcome, render_config
from flows.models import Flow, Run, StepRun

logger = logging.getLogger(__name__)

WORKER_LOST = "the worker running this flow stopped unexpectedly"

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


def claim(run_id: int, token: str, ignore_slots: bool = False) -> tuple[Run | None, str]:
    """Mark the run `running` for this token, or say why not ("missing", "finished",
    "duplicate", "waiting", "lost")."""
    with _claim_lock, transaction.atomic():
        # The flow's row first (always in this order): it serialises the slot count per flow.
        flow = _lock_flow_of(run_id)
        if flow is None:
            return None, "missing"
        # A called flow's run (flow.call) runs inside its caller's, which holds a slot already.
        slots = 1_000_000 if ignore_slots else flow.max_concurrency
        owner_cap = 0 if ignore_slots else settings.FLOWS_OWNER_MAX_RUNNING
        run = _claim_if_queued(run_id, token, slots, flow.owner_id, owner_cap)
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
        now = timezone.now()
        resumed = run.status == Run.Status.WAITING
        if resumed and run.resume_at and run.resume_at > now:
            # Early (a sweep, or a timer of a process that restarted): come back on time.
            transaction.on_commit(
                lambda: dispatch(run.pk, run.plan.get("time_limit_s"), at=run.resume_at)
            )
            return None, "early"
        if run.status == Run.Status.RUNNING:
            if run.claim != token:
                return None, "duplicate"
            if run.attempts >= settings.FLOWS_RUN_MAX_ATTEMPTS:
                _mark_failed(run, WORKER_LOST)
                return None, "lost"
            _fail_open_steps(run, WORKER_LOST)
        else:
            if run.running >= slots or _key_is_busy(run) or _owner_over_share(run, flow, owner_cap):
                Run.objects.filter(pk=run.pk).update(claim=WAITING)
                # A run finishing while we counted may have looked for waiters before this
                # commit: look again once committed, so no wake-up is lost.
                transaction.on_commit(lambda: dispatch_waiting(flow.pk))
                return None, "waiting"
        run.status = Run.Status.RUNNING
        # Resuming after a wait is the same attempt; only a lost worker makes a new one.
        run.attempts += 0 if resumed else 1
        run.resumed_from_wait = resumed
        run.claim = token
        run.worker = worker_id()
        run.heartbeat_at = now
        run.started_at = run.started_at or now
        run.save(
            update_fields=["status", "attempts", "claim", "worker", "heartbeat_at", "started_at"]
        )
        return run, "claimed"


class FlowSlots(NamedTuple):
    pk: int
    max_concurrency: int
    owner_id: int


def _lock_flow_of(run_id: int) -> FlowSlots | None:
    """The run's flow (its id, slots and owner only), its row locked until the transaction
    ends. Written out: it is on every run's path, and the query's compilation cost more than
    its round trip."""
    quote = db_connection.ops.quote_name
    column = {name: quote(Flow._meta.get_field(name).column) for name in ("id", "owner")}
    slots = quote(Flow._meta.get_field("max_concurrency").column)
    run_flow = quote(Run._meta.get_field("flow").column)
    lock = " FOR UPDATE" if db_connection.features.has_select_for_update else ""
    sql = (
        f"SELECT {column['id']}, {slots}, {column['owner']} FROM {quote(Flow._meta.db_table)} "
        f"WHERE {column['id']} = (SELECT {run_flow} FROM {quote(Run._meta.db_table)} "
        f"WHERE {quote(Run._meta.pk.column)} = %s){lock}"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [run_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return FlowSlots(*row)


def _owner_over_share(run: Run, flow: FlowSlots, cap: int) -> bool:
    """Whether the flow's owner already has `cap` runs running while other owners' runs wait:
    one owner may use every worker when nobody else needs one, but not while others wait."""
    if not cap:
        return False
    mine = Run.objects.filter(flow__owner_id=flow.owner_id, status=Run.Status.RUNNING)
    if mine.exclude(pk=run.pk).count() < cap:
        return False
    others = Run.objects.filter(status=Run.Status.QUEUED).exclude(flow__owner_id=flow.owner_id)
    return others.exists()


def _key_is_busy(run: Run) -> bool:
    """Whether the run's concurrency key already has as many runs running as it allows."""
    spec = (run.plan or {}).get("concurrency") or {}
    if not run.concurrency_key or spec.get("mode") != "queue":
        return False
    running = Run.objects.filter(
        flow_id=run.flow_id, concurrency_key=run.concurrency_key, status=Run.Status.RUNNING
    ).exclude(pk=run.pk)
    return running.count() >= spec.get("limit", 1)


def _run_sql_names() -> tuple[str, dict[str, str]]:
    """The run table's quoted name and its columns' by field name, for hand-written statements."""
    quote = db_connection.ops.quote_name
    fields = Run._meta.concrete_fields
    return quote(Run._meta.db_table), {f.name: quote(f.column) for f in fields}


def _claim_if_queued(
    run_id: int, token: str, max_concurrency: int, owner_id: int, owner_cap: int
) -> Run | None:
    """The usual claim in one statement, under the flow's lock: a queued run whose flow has a
    free slot (and whose owner is under their share of the workers) becomes running and comes
    back whole. None for anything else (a redelivery, a duplicate, a full flow, an owner at
    their share), which `claim` then looks at closely."""
    table, col = _run_sql_names()
    fields = Run._meta.concrete_fields
    now = timezone.now()
    owner_clause, owner_params = "", []
    if owner_cap:
        quote = db_connection.ops.quote_name
        flows = quote(Flow._meta.db_table)
        # Under the owner's share, or nobody else waits (an owner alone may use every worker).
        owner_clause = (
            f"AND ((SELECT COUNT(*) FROM {table} mine JOIN {flows} f ON mine.{col['flow']} = "
            f"f.{quote('id')} WHERE f.{quote('owner_id')} = %s AND mine.{col['status']} = %s) "
            f"< %s OR NOT EXISTS (SELECT 1 FROM {table} other JOIN {flows} g ON "
            f"other.{col['flow']} = g.{quote('id')} WHERE g.{quote('owner_id')} <> %s "
            f"AND other.{col['status']} = %s)) "
        )
        owner_params = [owner_id, Run.Status.RUNNING, owner_cap, owner_id, Run.Status.QUEUED]
    sql = (
        f"UPDATE {table} SET {col['status']} = %s, {col['attempts']} = {col['attempts']} + 1, "
        f"{col['claim']} = %s, {col['worker']} = %s, {col['heartbeat_at']} = %s, "
        f"{col['started_at']} = COALESCE({col['started_at']}, %s) "
        f"WHERE {col['id']} = %s AND {col['status']} = %s AND {col['concurrency_key']} = '' "
        f"AND (SELECT COUNT(*) FROM {table} "
        f"busy WHERE busy.{col['flow']} = {table}.{col['flow']} AND busy.{col['status']} = %s) "
        f"< %s {owner_clause}RETURNING {', '.join(col[f.name] for f in fields)}"
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
        *owner_params,
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
    ids = {
        binding["connection"]
        for step in run.plan.get("steps", [])
        for binding in (step.get("bindings") or {}).values()
        if binding.get("connection")
    }
    return connections.source().bound(run.flow.owner_id, ids) if ids else {}


def _open_settings(plan: dict[str, Any]) -> tuple[dict[str, Any], list[Any], str]:
    """The plan's settings with secret ones decrypted, the secret values (to redact), and why
    they cannot be read ("" when they can)."""
    values, secrets, problem = {}, [], ""
    for name, value in (plan.get("settings") or {}).items():
        if isinstance(value, dict) and set(value) == {SEALED}:
            try:
                value = unseal(value[SEALED])
            except SecretsUnreadable as exc:
                value, problem = None, f"setting '{name}': {exc}"
            secrets.append(value)
        values[name] = value
    return values, secrets, problem


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
        self.settings, secret_settings, self.problem = _open_settings(self.plan)
        self.redact = logs.Redactor(
            [s for c in self.connections.values() for s in _secret_values(c.secrets or {})]
            + _secret_values(secret_settings)
        )
        self.events = logs.RunEvents(run)
        self.log = logs.RunLog(run, self.redact, self.events)

    def context(self, steps: dict[str, Any], step_id: str) -> dict[str, Any]:
        return {
            "event": self.run.event,
            "settings": self.settings,
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
        walker = Walker(self)
        if run.attempts > 1 or run.resume_at is not None:
            kept = walker.load_history()
            if run.attempts > 1 and not getattr(run, "resumed_from_wait", False):
                self.log.write(
                    "",
                    "warning",
                    f"attempt {run.attempts}: resuming after {WORKER_LOST}"
                    + (f"; {kept} finished step(s) kept" if kept else ""),
                )
        if self.problem:
            self.finish(Run.Status.FAILED, self.problem, None)
            return
        status, error, output, resume_at = walker.walk()
        if status == Run.Status.WAITING:
            self.park(resume_at, output)
        else:
            self.finish(status, error, output)

    def respond(self, response: dict[str, Any]) -> None:
        """An `http.respond` step ran: keep its answer for the caller, and wake the caller."""
        if self.run.response is not None:
            return  # the first response wins, as for any HTTP request
        self.run.response = response
        Run.objects.filter(pk=self.run.pk).update(response=response)
        self.events.flush({"type": "response", "run": self.run.pk, "response": response})

    def call_flow(self, step: dict[str, Any], context: dict[str, Any]) -> StepOutcome:
        started = time.perf_counter()
        try:
            config = render_config(step, context)
        except templating.TemplateError as exc:
            return StepOutcome("failed", error=str(exc))
        outcome = call_flow(self.run, step["id"], config)
        outcome.input = config
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    def run_flow(self, step_id: str, config: dict[str, Any]) -> StepOutcome:
        """A flow called from inside a step (an agent's tool), as `flow.call` would."""
        return call_flow(self.run, step_id, config)

    def park(self, resume_at, output: Any) -> None:
        """Nothing can go on before `resume_at`: free the worker; the queue brings it back."""
        run = self.run
        with transaction.atomic():
            # Rows of steps that were still open (a loop waiting for a parked item) start over.
            StepRun.objects.filter(run=run, status=StepRun.Status.RUNNING).delete()
            parked = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, claim=self.token)
            stored = parked.update(
                status=Run.Status.WAITING, resume_at=resume_at, claim="", output=output
            )
        if not stored:
            self.events.flush()
            return
        run.status, run.resume_at, run.output = Run.Status.WAITING, resume_at, output
        self.events.flush(logs.run_event(run))
        dispatch(run.pk, run.plan.get("time_limit_s"), at=resume_at)
        dispatch_waiting(run.flow_id)
        if settings.FLOWS_OWNER_MAX_RUNNING:
            dispatch_waiting_for_owner(run.flow_id)

    def finish(self, status: str, error: str, output: Any) -> None:
        run = self.run
        run.status, run.output, run.finished_at = status, self.redact.value(output), timezone.now()
        run.error = self.redact(error)[: logs.MAX_ERROR_CHARS]
        waiters = _store_finish(run, self.token)
        if waiters is None:
            self.events.flush()
            return  # the sweeper decided this run's fate while it was running
        self.events.flush(logs.run_event(run))
        if waiters:
            dispatch_waiting(run.flow_id)
            if settings.FLOWS_OWNER_MAX_RUNNING:
                dispatch_waiting_for_owner(run.flow_id)
        if status == Run.Status.FAILED and (self.plan.get("on_error") or {}).get("flow"):
            start_error_flow(run, self.plan["on_error"]["flow"])


def _store_finish(run: Run, token: str) -> bool | None:
    """Store a run's final state if `token` still holds it (None if not), and say in the same
    statement whether runs of its flow (or, with owners' shares on, of its owner's flows) wait
    for a slot: one round trip on every run, not two."""
    table, col = _run_sql_names()
    same_flow = f"waiting.{col['flow']} = {table}.{col['flow']}"
    if settings.FLOWS_OWNER_MAX_RUNNING:
        quote = db_connection.ops.quote_name
        flows, owner = quote(Flow._meta.db_table), quote("owner_id")
        same_flow = (
            f"waiting.{col['flow']} IN (SELECT {quote('id')} FROM {flows} WHERE {owner} = "
            f"(SELECT {owner} FROM {flows} WHERE {quote('id')} = {table}.{col['flow']}))"
        )
    sql = (
        f"UPDATE {table} SET {col['status']} = %s, {col['error']} = %s, {col['output']} = %s, "
        f"{col['finished_at']} = %s WHERE {col['id']} = %s AND {col['status']} = %s "
        f"AND {col['claim']} = %s RETURNING EXISTS (SELECT 1 FROM {table} waiting "
        f"WHERE {same_flow} "
        f"AND waiting.{col['status']} IN (%s, %s) AND waiting.{col['claim']} = %s)"
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
        Run.Status.WAITING,
        WAITING,
    ]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def execute_run(
    run_id: int, token: str, manage_connections: bool = True, ignore_slots: bool = False
) -> str:
    """Claim and execute one run; returns what happened ("done", "waiting", "duplicate", ...).

    Worker threads and processes drop stale database connections around each run; inline
    execution uses the caller's connection as it is.
    """
    if manage_connections:
        close_old_connections()
    try:
        run, outcome = claim(run_id, token, ignore_slots)
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


def call_flow(parent: Run, step_id: str, config: dict[str, Any]) -> StepOutcome:
    """`flow.call`: run one of the owner's deployed flows with an input, linked to its parent
    run; wait for its output unless told not to."""
    depth = parent.depth + 1
    cap = settings.FLOWS_SUBFLOW_MAX_DEPTH
    if depth > cap:
        return StepOutcome(
            "failed", error=f"flows call each other more than {cap} deep: refusing to go on"
        )
    flow = Flow.objects.filter(owner_id=parent.flow.owner_id, pk=config.get("flow")).first()
    if flow is None:
        return StepOutcome("failed", error=f"flow {config.get('flow')} is not one of yours")
    wanted = str(config.get("version") or "latest").strip()
    version = flow.version_named(wanted)
    if version is None:
        return StepOutcome("failed", error=f"flow '{flow.name}' has no deployed version {wanted!r}")
    links = {"parent_run": parent, "parent_step": step_id, "depth": depth}
    child, _ = create_run(
        flow,
        trigger="flow",
        event=config.get("input") if config.get("input") is not None else {},
        plan=version.plan,
        version=version,
        parent=links,
        enqueue=not config.get("wait", True),
    )
    if not config.get("wait", True):
        return StepOutcome("succeeded", {"run_id": child.pk, "flow": flow.pk})
    if child.status == Run.Status.QUEUED:
        execute_run(child.pk, uuid.uuid4().hex, manage_connections=False, ignore_slots=True)
        child.refresh_from_db()
    answer = {"run_id": child.pk, "status": child.status}
    if child.status in (Run.Status.SUCCEEDED, Run.Status.SUCCEEDED_WITH_ERRORS):
        return StepOutcome("succeeded", child.output)
    if child.status == Run.Status.WAITING:
        error = (
            f"the called flow's run #{child.pk} waits until {child.resume_at:%Y-%m-%d %H:%M} "
            "UTC: call it without waiting for its output"
        )
        return StepOutcome("failed", answer, error=error)
    return StepOutcome(
        "failed", answer, error=f"the called flow's run #{child.pk} {child.status}: {child.error}"
    )


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
        # A silent heartbeat means a lost worker even when its pid lives (reused by another).
        if alive is False or beat < stale:
            outcome = recover(run.pk)
            if outcome in counts:
                counts[outcome] += 1
    for run in Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=stale).only(
        "pk", "flow_id", "plan"
    )[:500]:
        dispatch(run.pk, (run.plan or {}).get("time_limit_s"))
        counts["redispatched"] += 1
    # Parked runs whose time came and went: their timer was lost with a process.
    overdue = now - timedelta(seconds=settings.FLOWS_SCHEDULER_TICK_S * 2)
    for run in Run.objects.filter(status=Run.Status.WAITING, resume_at__lt=overdue).only(
        "pk", "plan"
    )[:500]:
        dispatch(run.pk, (run.plan or {}).get("time_limit_s"))
        counts["redispatched"] += 1
    return counts


def recover_local_runs() -> int:
    """At start-up: runs left running by dead processes of this host go back to the queue, and
    parked runs get their timers again (they lived in the process that stopped)."""
    recovered = 0
    for run in Run.objects.filter(status=Run.Status.RUNNING).only("pk", "worker"):
        if _pid_alive(run.worker) is False:
            recover(run.pk)
            recovered += 1
    for run in Run.objects.filter(status=Run.Status.WAITING).only("pk", "plan", "resume_at"):
        dispatch(run.pk, (run.plan or {}).get("time_limit_s"), at=run.resume_at)
        recovered += 1
    return recovered


def _execute_inline(run_id: int, token: str, _time_limit_s: int | None, delay: float) -> None:
    """Tests and one-off commands: execute at once, in the caller, on its connection."""
    if delay:
        time.sleep(delay)
    execute_run(run_id, token, manage_connections=False)


queue.register("inline", _execute_inline)
