"""A flow's own page: trigger URLs, setup of connections and settings, deploy, versions, diff,
rollback, pause and delete; flows as files: export, import and duplicate."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from flows.catalog import get_block
from flows.compiler import CompileError, deploy, rollback
from flows.document import export_document
from flows.engine import FlowNotDeployed, pause_flow, resume_flow
from flows.models import Flow, FlowVersion, Run
from integrations import jsonlimits
from integrations.services import github

from ..diff import document_diff
from ..effects import real_effects
from ..forms import FlowSetupForm


def owned_flow(request: HttpRequest, flow_id: int) -> Flow:
    return get_object_or_404(Flow.objects.owned_by(request.user), pk=flow_id)


def public_url(request: HttpRequest) -> str:
    """Where the outside world reaches this server: FLOWS_PUBLIC_URL, or else the address the
    browser used (its host and port), so that the URLs shown work as they are."""
    return (settings.FLOWS_PUBLIC_URL or request.build_absolute_uri("/")).rstrip("/")


def trigger_setup(request: HttpRequest, flow: Flow) -> dict:
    """What the user enters elsewhere to trigger this flow: URLs, secret and GitHub events."""
    trigger = (flow.document or {}).get("trigger") or {}
    kind = trigger.get("kind", "")
    public = public_url(request)
    config = trigger.get("config") or {}
    events = config.get("events") or []
    event_names = sorted({str(e).split(".")[0] for e in events})
    return {
        "kind": kind,
        "config": config,
        "github_permissions": github.permissions_needed(flow_capabilities(flow.document or {})),
        "github_app_events": [github.APP_EVENTS.get(e, e) for e in event_names],
        "webhook_url": f"{public}/hooks/{flow.webhook_token}/",
        "github_url": f"{public}/hooks/github/{flow.webhook_token}/",
        "telegram_url": f"{public}/hooks/telegram/{flow.webhook_token}/",
        "github_events": event_names,
        "github_actions": events,
    }


def flow_capabilities(document: dict) -> list[str]:
    """Every capability the flow's steps use: code steps' grants and blocks' own."""
    names: list[str] = []
    for step in document.get("steps") or []:
        if not isinstance(step, dict):
            continue
        block = get_block(str(step.get("kind", "")))
        if block is not None:
            grants = step.get("grants") if block.category == "code" else block.capabilities
            names.extend(str(n) for n in grants or [])
    return names


def deploy_flow(
    request: HttpRequest, flow: Flow, note: str = ""
) -> tuple[FlowVersion | None, list]:
    """Deploy the draft; return the new version, or the compiler's errors in plain words."""
    try:
        version = deploy(flow, request.user, note=note)
    except CompileError as exc:
        return None, exc.as_dicts()
    return version, []


@login_required
def flow_detail(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    runs = Run.objects.owned_by(request.user).filter(flow=flow).select_related("version")[:10]
    if request.htmx and request.GET.get("part") == "runs":
        return render(request, "web/_run_rows.html", {"runs": runs, "show_flow": False})
    return render(
        request,
        "web/flow_detail.html",
        {
            "flow": flow,
            "trigger": trigger_setup(request, flow),
            "runs": runs,
            "versions": flow.versions.all()[:5],
            "setup_form": FlowSetupForm(flow=flow, user=request.user),
        },
    )


@login_required
def flow_setup(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Connect the services and fill in the settings a flow needs, then (optionally) deploy."""
    flow = owned_flow(request, flow_id)
    form = FlowSetupForm(request.POST or None, flow=flow, user=request.user)
    errors: list = []
    if request.method == "POST" and form.is_valid():
        flow.document = form.apply(flow.document)
        flow.save(update_fields=["document", "updated_at"])
        if "deploy" not in request.POST:
            messages.success(request, "Saved the connections and settings.")
            return redirect("flow_setup", flow_id=flow.pk)
        version, errors = deploy_flow(request, flow, note="Set up")
        if version is not None:
            messages.success(request, f"Deployed version {version.number}. Your flow is live.")
            return redirect("flow_detail", flow_id=flow.pk)
    return render(
        request,
        "web/flow_setup.html",
        {
            "flow": flow,
            "form": form,
            "errors": errors,
            "next": reverse("flow_setup", args=[flow.pk]),
            "trigger": trigger_setup(request, flow),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def flow_deploy(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    version, errors = deploy_flow(request, flow, note=request.POST.get("note", "")[:200])
    if request.htmx:
        return render(
            request,
            "web/_deploy_result.html",
            {"flow": flow, "version": version, "errors": errors},
            status=200 if version else 422,
        )
    if version is None:
        for error in errors:
            messages.error(request, error["message"])
    else:
        messages.success(request, f"Deployed version {version.number}.")
    return redirect("flow_detail", flow_id=flow.pk)


@login_required
def flow_versions(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    versions = flow.versions.select_related("author")
    return render(request, "web/flow_versions.html", {"flow": flow, "versions": versions})


@login_required
def version_diff(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    """Version `number` against `?against=` (default: the one before it; "draft": the draft)."""
    flow = owned_flow(request, flow_id)
    version = get_object_or_404(flow.versions, number=number)
    against = request.GET.get("against", "")
    if against == "draft":
        old_label, old_doc = f"Version {number}", version.document
        new_label, new_doc = "Draft", flow.document
    else:
        try:
            other_number = int(against) if against else number - 1
        except ValueError as exc:
            raise Http404("No such version.") from exc
        other = flow.versions.filter(number=other_number).first()
        old_label = f"Version {other_number}" if other else "Nothing"
        old_doc = other.document if other else {}
        new_label, new_doc = f"Version {number}", version.document
    return render(
        request,
        "web/version_diff.html",
        {
            "flow": flow,
            "version": version,
            "rows": document_diff(old_doc, new_doc),
            "old_label": old_label,
            "new_label": new_label,
            "versions": flow.versions.all(),
            "against": against,
        },
    )


@login_required
@require_POST
def version_rollback(request: HttpRequest, flow_id: int, number: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    get_object_or_404(flow.versions, number=number)
    try:
        version = rollback(flow, number, request.user)
    except CompileError as exc:
        for error in exc.as_dicts():
            messages.error(request, f"Cannot roll back to version {number}: {error['message']}")
        return redirect("flow_versions", flow_id=flow.pk)
    messages.success(
        request, f"Rolled back: version {version.number} now runs what version {number} ran."
    )
    return redirect("flow_versions", flow_id=flow.pk)


@login_required
@require_POST
def flow_pause(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    if flow.status != Flow.Status.PAUSED:
        pause_flow(flow)
        messages.success(request, f"Paused “{flow.name}”: triggers are refused until you resume.")
        return redirect("flow_detail", flow_id=flow.pk)
    try:
        resume_flow(flow)
    except FlowNotDeployed as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Resumed “{flow.name}”: triggers start runs again.")
    return redirect("flow_detail", flow_id=flow.pk)


@login_required
def flow_delete(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    if request.method == "POST":
        name = flow.name
        flow.delete()
        messages.success(request, f"Deleted “{name}” and its run history.")
        return redirect("dashboard")
    return render(request, "web/flow_delete.html", {"flow": flow})


@login_required
def flow_export(request: HttpRequest, flow_id: int) -> HttpResponse:
    """The draft as a file, in the format of `manage.py flows export` (no secrets)."""
    flow = owned_flow(request, flow_id)
    text = json.dumps(export_document(flow.document or {}), indent=2, ensure_ascii=False) + "\n"
    response = HttpResponse(text, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{flow.slug or "flow"}.json"'
    return response


def copy_name(user, name: str) -> str:
    """“Name (copy)”, or “Name (copy 2)”, ... : a name none of the user's flows has yet."""
    taken = set(Flow.objects.owned_by(user).values_list("name", flat=True))
    base = f"{name} (copy"
    candidate, number = f"{base})", 2
    while candidate in taken:
        candidate, number = f"{base} {number})", number + 1
    return candidate[:200]


@login_required
@require_POST
def flow_duplicate(request: HttpRequest, flow_id: int) -> HttpResponse:
    """A new draft with the same document (connections and settings included)."""
    flow = owned_flow(request, flow_id)
    name = copy_name(request.user, flow.name)
    document = {**(flow.document or {}), "name": name}
    copy = Flow.objects.create(
        owner=request.user,
        name=name,
        slug=Flow.objects.unique_slug(request.user, name),
        description=flow.description,
        document=document,
    )
    messages.success(
        request, f"Created “{copy.name}”, a draft copy of “{flow.name}”. It is not deployed yet."
    )
    return redirect("flow_detail", flow_id=copy.pk)


@login_required
@require_POST
def flow_test_effects(request: HttpRequest, flow_id: int) -> HttpResponse:
    """What a test run of the canvas's document (or else the saved draft) does for real."""
    flow = owned_flow(request, flow_id)
    try:
        document = jsonlimits.loads(request.POST.get("document") or "null")
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = flow.document or {}
    return render(request, "web/_real_effects.html", {"effects": real_effects(document)})
