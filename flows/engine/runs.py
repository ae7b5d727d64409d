"""Start runs (from any trigger), re-run past ones, pause and resume flows."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from flows.engine.errors import FlowNotDeployed, FlowPaused
from flows.engine.queue import dispatch
from flows.models import Flow, FlowVersion, Run


def _create(
    flow: Flow,
    *,
    trigger: str,
    event: Any,
    plan: dict,
    version: FlowVersion | None,
    delivery_id: str = "",
    rerun_of: Run | None = None,
) -> tuple[Run, bool]:
    fields = {
        "flow": flow,
        "version": version,
        "plan": plan,
        "trigger": trigger,
        "event": event,
        "delivery_id": delivery_id,
        "rerun_of": rerun_of,
    }
    try:
        if transaction.get_connection().in_atomic_block:
            # A savepoint, so a repeated delivery leaves the caller's transaction usable.
            with transaction.atomic():
                run = Run.objects.create(**fields)
        else:
            # In autocommit the INSERT is a transaction of its own: no BEGIN/COMMIT round trips.
            run = Run.objects.create(**fields)
    except IntegrityError:
        existing = (
            Run.objects.filter(flow=flow, delivery_id=delivery_id).first() if delivery_id else None
        )
        if existing is None:
            raise
        return existing, False
    dispatch(run.pk, plan.get("time_limit_s"))
    return run, True


def start_run(
    flow: Flow,
    *,
    trigger: str,
    event: Any,
    delivery_id: str = "",
    version: FlowVersion | None = None,
    draft: bool = False,
) -> tuple[Run, bool]:
    """Create a queued run and enqueue it; a repeated delivery id returns the first run unrun."""
    from flows.compiler import compile_document

    delivery_id = (delivery_id or "")[:200]
    if delivery_id:
        existing = Run.objects.filter(flow=flow, delivery_id=delivery_id).first()
        if existing is not None:
            return existing, False
    if draft:
        plan, version = compile_document(flow.document, flow.owner), None
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
    return _create(
        flow, trigger=trigger, event=event, plan=plan, version=version, delivery_id=delivery_id
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
    new_run, _ = _create(
        flow, trigger=run.trigger, event=run.event, plan=plan, version=version, rerun_of=run
    )
    return new_run


def pause_flow(flow: Flow) -> None:
    """Stop accepting triggers (webhooks answer 409, schedules stop firing)."""
    flow.status = Flow.Status.PAUSED
    flow.save(update_fields=["status", "updated_at"])


def resume_flow(flow: Flow) -> None:
    if flow.current_version_id is None:
        raise FlowNotDeployed(f"The flow '{flow.name}' is not deployed: deploy it first.")
    flow.status = Flow.Status.ACTIVE
    flow.save(update_fields=["status", "updated_at"])
