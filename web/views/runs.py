"""Run history (across flows and per flow, filtered), the run page, and re-runs."""

from collections import Counter
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from flows.engine import FlowNotDeployed, rerun
from flows.models import Run, StepRun

from ..forms import RunFilterForm
from .flows import owned_flow

PAGE_SIZE = 50


@login_required
def run_list(request: HttpRequest, flow_id: int | None = None) -> HttpResponse:
    flow = owned_flow(request, flow_id) if flow_id is not None else None
    runs = Run.objects.owned_by(request.user).select_related("flow", "version")
    if flow is not None:
        runs = runs.filter(flow=flow)
    # Without the ordering the database drops duplicates itself instead of sending every row.
    triggers = sorted(runs.order_by().values_list("trigger", flat=True).distinct())
    form = RunFilterForm(request.GET or None, triggers=triggers)
    if form.is_valid():
        data = form.cleaned_data
        if data["status"]:
            runs = runs.filter(status=data["status"])
        if data["trigger"]:
            runs = runs.filter(trigger=data["trigger"])
        if data["date_from"]:
            runs = runs.filter(created_at__date__gte=data["date_from"])
        if data["date_to"]:
            runs = runs.filter(created_at__date__lte=data["date_to"])
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"flow": flow, "form": form, "page": page, "query": query.urlencode()}
    template = "web/_run_table.html" if request.htmx else "web/run_list.html"
    return render(request, template, context)


@dataclass
class TimelineItem:
    """One step of a run: its attempts so far (the latest shown, earlier ones folded)."""

    id: str
    kind: str
    attempts: list[StepRun] = field(default_factory=list)

    @property
    def latest(self) -> StepRun | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def earlier(self) -> list[StepRun]:
        return self.attempts[:-1]

    @property
    def items_summary(self) -> str:
        """For a step inside a loop, how its items went: "3 items: 2 succeeded, 1 failed"."""
        last: dict[str, str] = {}
        for attempt in self.attempts:
            if attempt.scope:
                last[attempt.scope] = attempt.status
        if not last:
            return ""
        counts = Counter(last.values())
        parts = ", ".join(
            f"{n} {StepRun.Status(status).label.lower()}" for status, n in counts.most_common()
        )
        return f"{len(last)} item{'s' if len(last) != 1 else ''}: {parts}"


def timeline(run: Run, step_id: str | None = None) -> list[TimelineItem]:
    """The plan's steps in order with their step runs; steps not reached yet are waiting."""
    items: dict[str, TimelineItem] = {}
    for planned in (run.plan or {}).get("steps") or []:
        if isinstance(planned, dict) and planned.get("id"):
            items[planned["id"]] = TimelineItem(planned["id"], planned.get("kind", ""))
    # In the order they were written: the last one of a step is its latest attempt or item.
    steps = run.steps.order_by("position", "id")
    if step_id is not None:
        steps = steps.filter(step_id=step_id)
    for step in steps:
        item = items.setdefault(step.step_id, TimelineItem(step.step_id, step.kind))
        item.attempts.append(step)
    if step_id is not None:
        return [items[step_id]] if step_id in items else []
    return list(items.values())


def owned_run(request: HttpRequest, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.owned_by(request.user).select_related("flow", "version"), pk=run_id
    )


def live_context(run: Run) -> dict:
    return {"run": run, "timeline": timeline(run), "log_lines": run.log_lines.all()}


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = owned_run(request, run_id)
    children = run.children.select_related("flow").order_by("id")
    context = {"flow": run.flow, "children": children, **live_context(run)}
    return render(request, "web/run_detail.html", context)


@login_required
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live part of the run page, fetched again when the run finishes."""
    return render(request, "web/_run_live.html", live_context(owned_run(request, run_id)))


@login_required
def run_step(request: HttpRequest, run_id: int, step_id: str) -> HttpResponse:
    """One step of the timeline with its input and output, fetched when it finishes."""
    run = owned_run(request, run_id)
    items = timeline(run, step_id)
    if not items:
        raise Http404("No such step in this run.")
    return render(request, "web/_step_item.html", {"run": run, "item": items[0]})


@login_required
@require_POST
def run_rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    """Run the same event again, on the run's own version (or draft plan) or the latest version."""
    run = owned_run(request, run_id)
    try:
        new_run = rerun(run, latest=request.POST.get("version") == "latest")
    except FlowNotDeployed as exc:
        messages.error(request, str(exc))
        return redirect("run_detail", run_id=run.pk)
    return redirect("run_detail", run_id=new_run.pk)
