"""The home page, the dashboard of a user's flows, and creating a blank flow or one from a file."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from flows.document import empty_document
from flows.models import Flow, Run

from ..forms import ImportFlowForm, NewFlowForm


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "web/home.html")


# The runs a success rate counts: those that ended after doing their work or failing at it.
FINISHED_COUNTED = [Run.Status.SUCCEEDED, Run.Status.SUCCEEDED_WITH_ERRORS, Run.Status.FAILED]


def flows_with_stats(user) -> list[Flow]:
    """The user's flows with their last run and success rate over finished deployed runs."""
    last_run = Run.objects.filter(flow=OuterRef("pk")).order_by("-created_at", "-id")
    flows = (
        Flow.objects.owned_by(user)
        .select_related("current_version")
        .annotate(
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
            runs_finished=Count("runs", filter=Q(runs__status__in=FINISHED_COUNTED)),
            runs_succeeded=Count("runs", filter=Q(runs__status="succeeded")),
        )
    )
    result = list(flows)
    for flow in result:
        flow.success_rate = (
            round(100 * flow.runs_succeeded / flow.runs_finished) if flow.runs_finished else None
        )
    return result


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "web/dashboard.html",
        {"flows": flows_with_stats(request.user), "form": NewFlowForm()},
    )


@login_required
@require_POST
def flow_create(request: HttpRequest) -> HttpResponse:
    form = NewFlowForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "web/dashboard.html",
            {"flows": flows_with_stats(request.user), "form": form},
            status=400,
        )
    name = form.cleaned_data["name"]
    flow = Flow.objects.create(
        owner=request.user,
        name=name,
        slug=Flow.objects.unique_slug(request.user, name),
        document={**empty_document(name), "layout": {"trigger": {"x": 40, "y": 120}}},
    )
    messages.success(request, f"Created “{flow.name}”. Add steps from the palette on the left.")
    return redirect("builder", flow_id=flow.pk)


@login_required
def flow_import(request: HttpRequest) -> HttpResponse:
    """A new draft flow from a flow file, uploaded or pasted (as `manage.py flows import`)."""
    form = ImportFlowForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        flow = form.save(request.user)
        if flow is not None:
            unbound = [
                alias
                for alias, spec in (flow.document.get("connections") or {}).items()
                if spec.get("connection") is None
            ]
            note = " Choose its connections, then deploy." if unbound else ""
            messages.success(request, f"Imported “{flow.name}” as a draft.{note}")
            return redirect("flow_setup" if unbound else "flow_detail", flow_id=flow.pk)
    return render(
        request,
        "web/flow_import.html",
        {"form": form},
        status=400 if request.method == "POST" else 200,
    )
