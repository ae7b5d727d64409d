"""Start runs (from any trigger), re-run past ones, pause and resume flows."""

from __future__ import annotations

import collections
import threading
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from flows import templating
from flows.document import upgrade
from flows.engine import logs, rows
from flows.engine.errors import FlowNotDeployed, FlowPaused
from flows.engine.queue import dispatch
from flows.models import Flow, FlowVersion, Run

WAITING = "waiting"  # Run.claim of a run refused for lack of a free slot: the next finish wakes it

# Deployed versions read by this process, by id. A version never changes once saved
# (FlowVersion.save refuses to), so its plan is read and decoded once, not on every webhook.
VERSIONS_KEPT = 256
_versions: collections.OrderedDict[int, FlowVersion] = collections.OrderedDict()
_versions_lock = threading.Lock()


def forget_versions() -> None:
    with _versions_lock:
        _versions.clear()


def deployed_version(version_id: int) -> FlowVersion | None:
    """The deployed version (without its document), from this process's memory once read.
    Its plan is shared by the callers: read it, never change it."""
    with _versions_lock:
        version = _versions.get(version_id)
        if version is not None:
            _versions.move_to_end(version_id)
            return version
    version = FlowVersion.objects.defer("document").filter(pk=version_id).first()
    if version is not None:
        with _versions_lock:
            _versions[version_id] = version
            while len(_versions) > VERSIONS_KEPT:
                _versions.popitem(last=False)
    return version


def create_run(
    flow: Flow,
    *,
    trigger: str,
    event: Any,
    plan: dict,
    version: FlowVersion | None,
    delivery_id: str = "",
    rerun_of: Run | None = None,
    parent: dict[str, Any] | None = None,
    enqueue: bool = True,
    here: bool = False,
) -> tuple[Run, bool]:
    """Store a queued run and enqueue it (`here`: its caller waits in this process, see
    queue.dispatch); a repeated delivery id returns the stored run instead."""
    fields = {
        "flow": flow,
        "version": version,
        "plan": plan,
        "trigger": trigger,
        "event": event,
        "delivery_id": delivery_id,
        "rerun_of": rerun_of,
        **(parent or {}),
    }
    spec = plan.get("concurrency")
    if spec:
        fields["concurrency_key"] = concurrency_key(spec, event, plan)
        if spec["mode"] == "drop_new" and fields["concurrency_key"]:
            busy = _same_key(flow, fields["concurrency_key"]).order_by("created_at").first()
            if busy is not None:
                fields.update(
                    status=Run.Status.CANCELLED,
                    cancelled_by=busy,
                    finished_at=timezone.now(),
                    error=f"dropped: run #{busy.pk} with the same concurrency key "
                    f"'{fields['concurrency_key']}' is in progress",
                )
    try:
        run = Run(**fields)
        if transaction.get_connection().in_atomic_block:
            # A savepoint, so a repeated delivery leaves the caller's transaction usable.
            with transaction.atomic():
                rows.insert(run)
        else:
            # In autocommit the INSERT is a transaction of its own: no BEGIN/COMMIT round trips.
            rows.insert(run)
    except IntegrityError:
        existing = (
            Run.objects.filter(flow=flow, delivery_id=delivery_id).first() if delivery_id else None
        )
        if existing is None:
            raise
        return existing, False
    if run.status == Run.Status.CANCELLED or not enqueue:
        return run, True
    if spec and spec["mode"] == "cancel_in_progress" and run.concurrency_key:
        _cancel_older(run, spec.get("limit", 1))
    dispatch(run.pk, plan.get("time_limit_s"), here=here)
    return run, True


ACTIVE = (Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.WAITING)


def concurrency_key(spec: dict[str, Any], event: Any, plan: dict[str, Any]) -> str:
    """The run's concurrency key: the flow's template over the event and settings ("" when it
    renders empty or fails: such a run is not grouped with others)."""
    context = {"event": event, "settings": plan.get("settings", {}), "steps": {}, "run": {}}
    try:
        value = templating.render_value(spec["key"], context)
    except templating.TemplateError:
        return ""
    return "" if value is None else str(value)[:200]


def _same_key(flow: Flow, key: str):
    return Run.objects.filter(flow=flow, concurrency_key=key, status__in=ACTIVE)


def _cancel_older(run: Run, limit: int) -> None:
    """cancel_in_progress: the newest `limit` runs of the key go on; older ones are cancelled
    (a running one stops before its next step; its watchers are told now)."""
    older = list(
        _same_key(run.flow, run.concurrency_key)
        .exclude(pk=run.pk)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[max(0, limit - 1) :]
    )
    if not older:
        return
    error = (
        f"cancelled: run #{run.pk} with the same concurrency key '{run.concurrency_key}' "
        "replaced it"
    )
    Run.objects.filter(pk__in=older, status__in=ACTIVE).update(
        status=Run.Status.CANCELLED, cancelled_by=run, error=error, finished_at=timezone.now()
    )
    for cancelled in Run.objects.filter(pk__in=older, status=Run.Status.CANCELLED):
        logs.send(cancelled, logs.run_event(cancelled))
    dispatch_waiting(run.flow_id)


def with_pins(plan: dict, pinned: dict) -> dict:
    """A test run's plan with the outputs pinned in the builder: those steps (outside loops)
    do not run, and the steps after them start from the pinned data."""
    outside_loops = {s["id"] for s in plan.get("steps", []) if not s.get("parent")}
    pins = {
        step: {"output": pin.get("output"), "port": pin.get("port") or "out"}
        for step, pin in pinned.items()
        if step in outside_loops and isinstance(pin, dict)
    }
    return {**plan, "pinned": pins} if pins else plan


def start_run(
    flow: Flow,
    *,
    trigger: str,
    event: Any,
    delivery_id: str = "",
    version: FlowVersion | None = None,
    draft: bool = False,
    here: bool = False,
) -> tuple[Run, bool]:
    """Create a queued run and enqueue it; a repeated delivery id returns the first run unrun,
    unless that run failed: a redelivery of a failed delivery runs again. `here`: the caller
    waits for the run's answer in this process (create_run)."""
    from flows.compiler import compile_document

    delivery_id = (delivery_id or "")[:200]
    failed = None
    if delivery_id:
        existing = Run.objects.filter(flow=flow, delivery_id=delivery_id).first()
        if existing is not None and existing.status != Run.Status.FAILED:
            return existing, False
        failed = existing
    if draft:
        plan, version = compile_document(flow.document, flow.owner), None
        plan = with_pins(plan, upgrade(flow.document).get("pinned") or {})
    else:
        if version is None:
            if flow.status == Flow.Status.PAUSED:
                raise FlowPaused(f"The flow '{flow.name}' is paused: resume it to run it again.")
            if flow.status != Flow.Status.ACTIVE or flow.current_version_id is None:
                raise FlowNotDeployed(
                    f"The flow '{flow.name}' is not deployed: deploy it before triggering it."
                )
            version = flow.current_version
        plan = version.plan
    if failed is not None:
        _release_delivery(failed, delivery_id)
    return create_run(
        flow,
        trigger=trigger,
        event=event,
        plan=plan,
        version=version,
        delivery_id=delivery_id,
        rerun_of=failed,
        here=here,
    )


def _release_delivery(failed: Run, delivery_id: str) -> None:
    """The failed run gives up its delivery id (renamed, so one_run_per_delivery lets the new run
    have it). The conditional UPDATE is atomic: of two simultaneous redeliveries one releases it,
    and the other then meets the new run's id on insert and is answered as a duplicate."""
    suffix = f"~failed-run-{failed.pk}"
    Run.objects.filter(pk=failed.pk, delivery_id=delivery_id, status=Run.Status.FAILED).update(
        delivery_id=delivery_id[: 200 - len(suffix)] + suffix
    )


def rerun(run: Run, latest: bool = False) -> Run:
    """Run a past run's event again, on the same version (or plan) or on the flow's latest."""
    flow = run.flow
    if latest:
        if flow.current_version_id is None:
            raise FlowNotDeployed(
                f"The flow '{flow.name}' is not deployed: deploy it before re-running on the "
                "latest version."
            )
        version, plan = flow.current_version, flow.current_version.plan
    elif run.version_id is not None:
        version, plan = run.version, run.version.plan
    else:
        version, plan = None, run.plan
    new_run, _ = create_run(
        flow, trigger=run.trigger, event=run.event, plan=plan, version=version, rerun_of=run
    )
    return new_run


def start_error_flow(failed: Run, flow_id: int) -> Run | None:
    """A run failed and its flow names an error flow: start that flow on what happened."""
    flow = Flow.objects.filter(owner_id=failed.flow.owner_id, pk=flow_id).first()
    if flow is None or flow.status != Flow.Status.ACTIVE or flow.current_version is None:
        return None
    if failed.depth >= settings.FLOWS_SUBFLOW_MAX_DEPTH:
        return None
    event = {
        "flow": {"id": failed.flow_id, "name": failed.flow.name},
        "run": {"id": failed.pk, "status": failed.status, "error": failed.error},
    }
    run, _ = create_run(
        flow,
        trigger="error",
        event=event,
        plan=flow.current_version.plan,
        version=flow.current_version,
        parent={"parent_run": failed, "depth": failed.depth + 1},
    )
    return run


def dispatch_waiting(flow_id: int) -> int:
    """Hand runs that waited for a free slot of their flow back to the executor."""
    waiting_runs = Run.objects.filter(
        flow_id=flow_id, status__in=(Run.Status.QUEUED, Run.Status.WAITING), claim=WAITING
    )
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


def dispatch_waiting_for_owner(flow_id: int) -> int:
    """A run of this flow's owner ended: their oldest run that waited for a free slot tries
    again (it waits once more if its flow, its key or its owner's share is still full)."""
    owner = Flow.objects.filter(pk=flow_id).values("owner_id")
    waiting = (
        Run.objects.filter(
            flow__owner_id=Subquery(owner),
            status__in=(Run.Status.QUEUED, Run.Status.WAITING),
            claim=WAITING,
        )
        .order_by("created_at", "id")
        .values_list("pk", "plan__time_limit_s")
        .first()
    )
    if waiting is None:
        return 0
    pk, limit = waiting
    if not Run.objects.filter(pk=pk, claim=WAITING).update(claim=""):
        return 0
    dispatch(pk, limit)
    return 1


def pause_flow(flow: Flow) -> None:
    """Stop accepting triggers (webhooks answer 409, schedules stop firing)."""
    flow.status = Flow.Status.PAUSED
    flow.save(update_fields=["status", "updated_at"])


def resume_flow(flow: Flow) -> None:
    if flow.current_version_id is None:
        raise FlowNotDeployed(f"The flow '{flow.name}' is not deployed: deploy it first.")
    flow.status = Flow.Status.ACTIVE
    flow.save(update_fields=["status", "updated_at"])
