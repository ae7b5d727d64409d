"""The builder: a canvas of the trigger and steps, node forms generated from the block catalog,
save, deploy, Wasm uploads and test runs of the draft.

The flow's `connections` aliases are derived from the nodes: the canvas binds a node to one of the
owner's connections (creating an alias when needed), and every save drops the aliases no step
needs. Each save carries the revision of the draft it started from; a save over a draft changed
elsewhere (another tab, the set-up page) is refused unless the user chooses to overwrite it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from flows import capabilities
from flows.catalog import Block, block_capabilities, blocks_by_category, get_block
from flows.compiler import CompileError, compile_document
from flows.document import upgrade
from flows.engine import start_run
from flows.models import Artifact, Flow, StepRun
from flows.sandbox import SandboxError
from integrations import jsonlimits
from integrations.forms import SERVICE_FORMS, form_for
from integrations.models import Connection
from integrations.services import test_connection

from ..forms import NodeField, node_fields, service_label
from ..samples import default_event, github_sample_names, sample_event, saved_runs
from .agent_tools import agent_tool_choices
from .connections import labelled
from .flows import deploy_flow, owned_flow
from .modules import details_context, details_response, upload_from
from .runs import live_context

CATEGORY_TITLES = {
    "trigger": "Triggers",
    "integration": "Integrations",
    "logic": "Logic",
    "code": "Code",
}


def block_catalog() -> dict:
    """What the canvas needs to know of each block: its title, category, default config and the
    output ports it declares (the canvas draws any block from this, with no code of its own)."""
    return {
        block.kind: {
            "title": block.title,
            "category": block.category,
            "service": block.service,
            "capabilities": list(block.capabilities),
            "defaults": {p.name: p.default for p in block.params if p.default is not None},
            "ports": list(block.ports),
            "ports_from": block.ports_from,
            "has_body": block.has_body,
            # Its config's tools bring capabilities (and so connections) of their own.
            "tools": block.capabilities_from is not None,
        }
        for blocks in blocks_by_category().values()
        for block in blocks
    }


def capability_services() -> dict[str, str]:
    """The service each capability needs (for code steps, whose grants decide their services)."""
    return {name: cap.service for name, cap in capabilities.REGISTRY.items() if cap.service}


def step_services(block: Block | None, step: dict) -> list[str]:
    """The connection services a step needs: its block's (and its tools', for an agent), or
    those of a code step's grants."""
    if block is None:
        return []
    if block.service and block.capabilities_from is None:
        return [block.service]
    services: list[str] = [block.service] if block.service else []
    config = step.get("config") if isinstance(step.get("config"), dict) else {}
    names = block_capabilities(block, config)
    if block.category == "code":
        names += [g for g in step.get("grants") or [] if isinstance(g, str)]
    for name in names:
        cap = capabilities.REGISTRY.get(name)
        if cap and cap.service and cap.service not in services:
            services.append(cap.service)
    return services


def needed_aliases(document: dict) -> set[str]:
    """The connection aliases some step uses: the one it names, or, when it names none for a
    service it needs, every alias of that service (the compiler picks or asks)."""
    aliases = document.get("connections") or {}
    needed: set[str] = set()
    for step in document.get("steps") or []:
        chosen = step.get("connection")
        if isinstance(chosen, str) and chosen in aliases:
            needed.add(chosen)
        for service in step_services(get_block(str(step.get("kind", ""))), step):
            if isinstance(chosen, str) and aliases.get(chosen, {}).get("service") == service:
                continue
            needed.update(a for a, spec in aliases.items() if spec.get("service") == service)
    return needed


def prune_connections(document: dict) -> dict:
    """The document without the connection aliases no step needs."""
    aliases = document.get("connections") or {}
    keep = needed_aliases(document)
    document["connections"] = {a: spec for a, spec in aliases.items() if a in keep}
    return document


def draft_revision(document: Any) -> str:
    """A short fingerprint of a stored draft: a save names the one it was made from."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@login_required
def builder(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    palette = [
        (CATEGORY_TITLES.get(category, category.capitalize()), blocks)
        for category, blocks in blocks_by_category().items()
        if category != "trigger"
    ]
    return render(
        request,
        "web/builder.html",
        {
            "flow": flow,
            "palette": palette,
            "catalog": block_catalog(),
            "capability_services": capability_services(),
            "document": upgrade(flow.document),
            "revision": draft_revision(flow.document),
            "github_samples": github_sample_names(),
            "event_json": json.dumps(
                default_event((flow.document or {}).get("trigger") or {}, flow.document), indent=2
            ),
            "saved_runs": saved_runs(flow),
        },
    )


class BadDocument(ValueError):
    pass


class DraftChanged(Exception):
    """The stored draft is not the one the canvas started from."""


def posted_document(request: HttpRequest) -> dict:
    try:
        document = jsonlimits.loads(request.POST.get("document", ""))
    except json.JSONDecodeError as exc:
        raise BadDocument(f"The flow could not be read: {exc.msg} (position {exc.pos}).") from exc
    except jsonlimits.TooDeep as exc:
        raise BadDocument(f"The flow could not be read: {exc}.") from exc
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise BadDocument("The flow could not be read: it has no list of steps.")
    if problem := shape_problem(document):
        raise BadDocument(f"The flow could not be read: {problem}.")
    return document


# The parts of a draft the pages read; a draft of another shape would break them once saved.
OBJECT_PARTS = ("trigger", "settings", "connections", "layout")


def shape_problem(document: dict) -> str:
    """Why the pages could not read this draft ("" when they can)."""
    for part in OBJECT_PARTS:
        if not isinstance(document.get(part, {}), dict):
            return f'"{part}" must be an object'
    if not isinstance(document.get("edges", []), list):
        return '"edges" must be a list'
    trigger = document.get("trigger") or {}
    if not isinstance(trigger.get("kind", ""), str):
        return 'the trigger\'s "kind" must be a string'
    if not isinstance(trigger.get("config", {}), dict):
        return 'the trigger\'s "config" must be an object'
    if not isinstance(trigger.get("config", {}).get("events", []), list | str):
        return 'the trigger\'s "events" must be a list'
    for alias, spec in (document.get("connections") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("service", ""), str):
            return f'connection "{alias}" must be an object with a "service" name'
    for number, step in enumerate(document["steps"], 1):
        if not isinstance(step, dict):
            return f"step {number} must be an object"
        for key, kind, words in STEP_PARTS:
            if not isinstance(step.get(key, kind()), kind):
                return f'the "{key}" of step {number} must be {words}'
    return ""


STEP_PARTS = (
    ("id", str, "a string"),
    ("kind", str, "a string"),
    ("config", dict, "an object"),
    ("grants", list, "a list"),
    ("limits", dict, "an object"),
)


def checked_save(request: HttpRequest, flow: Flow) -> list[dict]:
    """Store the posted draft unless it was made from an older one than the stored draft (and
    the user did not choose to overwrite it); the check and the write hold the flow's row, so
    that a save from another tab cannot slip between them. Returns the compiler's errors."""
    document = posted_document(request)
    base = request.POST.get("revision")
    with transaction.atomic():
        stored = Flow.objects.select_for_update().only("document").get(pk=flow.pk).document
        if base and request.POST.get("overwrite") != "1" and base != draft_revision(stored):
            raise DraftChanged()
        return save_draft(flow, document)


def conflict(request: HttpRequest, flow: Flow) -> HttpResponse:
    return render(request, "web/_draft_conflict.html", {"flow": flow}, status=409)


def save_draft(flow: Flow, document: dict) -> list[dict]:
    """Store the draft and return its compiler errors (empty when it would deploy)."""
    document = prune_connections(document)
    flow.document = document
    if document.get("name"):
        flow.name = str(document["name"])[:200]
    flow.save(update_fields=["document", "name", "updated_at"])
    try:
        compile_document(document, flow.owner)
    except CompileError as exc:
        return exc.as_dicts()
    return []


def with_errors(
    response: HttpResponse, errors: list[dict], flow: Flow | None = None
) -> HttpResponse:
    """Tell the canvas which nodes and fields have errors and, after a save, the revision and
    connection aliases of the stored draft (htmx events)."""
    if flow is not None:
        response = trigger_client_event(
            response,
            "flow-saved",
            {
                "revision": draft_revision(flow.document),
                "connections": flow.document.get("connections") or {},
            },
        )
    return trigger_client_event(response, "flow-errors", {"errors": errors})


@login_required
@require_POST
def builder_save(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    try:
        errors = checked_save(request, flow)
    except BadDocument as exc:
        return render(request, "web/_save_result.html", {"problem": str(exc)}, status=400)
    except DraftChanged:
        return conflict(request, flow)
    response = render(request, "web/_save_result.html", {"flow": flow, "errors": errors})
    return with_errors(response, errors, flow)


@login_required
@require_POST
def builder_deploy(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    try:
        errors = checked_save(request, flow)
    except BadDocument as exc:
        return render(request, "web/_save_result.html", {"problem": str(exc)}, status=400)
    except DraftChanged:
        return conflict(request, flow)
    version = None
    if not errors:
        version, errors = deploy_flow(request, flow, note=request.POST.get("note", "")[:200])
    response = render(
        request, "web/_deploy_result.html", {"flow": flow, "version": version, "errors": errors}
    )
    return with_errors(response, errors, flow)


def grant_choices() -> list[tuple[str, list]]:
    """Capabilities a code step may be granted, grouped by the service they need."""
    groups: dict[str, list] = {}
    for cap in sorted(capabilities.REGISTRY.values(), key=lambda c: c.name):
        groups.setdefault(service_label(cap.service) or "Built in", []).append(cap)
    return sorted(groups.items())


def object_lists_as_json(block: Block, config: dict, fields: list[NodeField]) -> list[NodeField]:
    """A list whose items are objects (a switch's cases, which name its ports) is edited as
    JSON: one item per line would turn each object into text."""
    for index, field in enumerate(fields):
        param = field.param
        if param.type != "list":
            continue
        default = param.default if isinstance(param.default, list) else []
        if param.name == block.ports_from or any(isinstance(item, dict) for item in default):
            raw = config.get(param.name, param.default)
            fields[index] = NodeField(
                param=dataclasses.replace(param, type="json"),
                widget="json",
                value="" if raw is None else json.dumps(raw, indent=2),
                error=field.error,
            )
    return fields


def posted_connections(request: HttpRequest, flow: Flow) -> dict[str, dict]:
    """The canvas's connection aliases (which may be ahead of the stored draft)."""
    try:
        aliases = jsonlimits.loads(request.POST["connections"])
    except (KeyError, ValueError):
        aliases = (flow.document or {}).get("connections") or {}
    if not isinstance(aliases, dict):
        return {}
    return {a: spec for a, spec in aliases.items() if isinstance(spec, dict)}


def connection_pickers(
    request: HttpRequest,
    block: Block | None,
    step: dict,
    aliases: dict[str, dict],
    field_errors: dict[str, str],
) -> list[dict]:
    """One picker per service the step needs: the owner's connections of that service, the one
    this step is bound to, and the alias it goes through when the flow has several."""
    pickers = []
    services = step_services(block, step)
    # The compiler reports a block's missing binding on its "kind"; it belongs to the picker.
    primary_error = field_errors.get("connection") or (
        field_errors.get("kind") if block and block.service else None
    )
    chosen = step.get("connection")
    for index, service in enumerate(services):
        of_service = sorted(a for a, spec in aliases.items() if spec.get("service") == service)
        if chosen in of_service:
            alias = chosen
        else:
            alias = of_service[0] if len(of_service) == 1 else None
        bound = aliases[alias].get("connection") if alias else None
        error = field_errors.get(f"connections.{alias}") if alias else None
        pickers.append(
            {
                "service": service,
                "label": service_label(service),
                "primary": index == 0,
                "alias": alias,
                "show_alias": len(of_service) > 1,
                "bound": bound,
                "error": error or (primary_error if index == 0 else None),
                "creatable": service in SERVICE_FORMS,
                "connections": Connection.objects.owned_by(request.user)
                .filter(service=service)
                .order_by("name"),
            }
        )
    return pickers


@login_required
@require_POST
def builder_node_form(request: HttpRequest, flow_id: int) -> HttpResponse:
    """The form of one node, generated from its block's declaration, with its errors."""
    flow = owned_flow(request, flow_id)
    try:
        step = jsonlimits.loads(request.POST.get("step", "{}"))
        errors = jsonlimits.loads(request.POST.get("errors", "[]"))
    except ValueError:
        step, errors = {}, []
    if not isinstance(step, dict):
        step = {}
    # The canvas sends the compiler's errors back as it got them: keep only well-formed ones.
    errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    block = get_block(str(step.get("kind", "")))
    field_errors = {e.get("field", ""): e.get("message", "") for e in errors if e.get("field")}
    config = step.get("config") if isinstance(step.get("config"), dict) else {}
    is_trigger = step.get("id") == "trigger"
    param_names = {p.name for p in block.params} if block else set()
    aliases = posted_connections(request, flow)
    pickers = connection_pickers(request, block, step, aliases, field_errors)
    # Errors a picker shows are not repeated at the end of the form.
    shown = {"connection"} | ({"kind"} if block and block.service else set()) if pickers else set()
    shown |= {f"connections.{p['alias']}" for p in pickers if p["alias"]}
    context = {
        "flow": flow,
        "step": step,
        "block": block,
        "is_trigger": is_trigger,
        "fields": object_lists_as_json(block, config, node_fields(block, config, field_errors))
        if block
        else [],
        "general_errors": [e.get("message", "") for e in errors if not e.get("field")],
        "other_errors": {
            k: v for k, v in field_errors.items() if k not in param_names and k not in shown
        },
        "trigger_blocks": blocks_by_category().get("trigger", []),
        "grant_groups": grant_choices() if block and block.category == "code" else [],
        "grants": step.get("grants") or [],
        "limits": step.get("limits") or {},
        "pickers": pickers,
        "artifacts": Artifact.objects.owned_by(request.user).order_by("-created_at")[:50],
        "agent_tools": agent_tool_choices(request.user, flow, step, aliases)
        if block and block.capabilities_from
        else None,
    }
    if block and block.kind == "code.wasm":
        context.update(chosen_module(request, config.get("artifact")))
    if context["agent_tools"] is not None:
        context["agent_tools"]["error"] = field_errors.get("tools", "")
        context["fields"] = [f for f in context["fields"] if f.name != "tools"]
    return render(request, "web/_node_form.html", context)


def chosen_module(request: HttpRequest, digest: Any) -> dict:
    """The details of the module a Wasm step names, when it is one of the user's."""
    artifact = (
        Artifact.objects.owned_by(request.user).filter(digest=digest).first()
        if isinstance(digest, str)
        else None
    )
    if artifact is None:
        return {}
    try:
        return details_context(artifact)
    except SandboxError:
        return {}


@login_required
@require_POST
def builder_upload(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Check and store an uploaded Wasm module for this user; show what it asks for."""
    owned_flow(request, flow_id)
    artifact, problem = upload_from(request)
    if artifact is None:
        return render(request, "web/_upload_result.html", {"problem": problem}, status=400)
    return details_response(request, artifact, uploaded=True)


@login_required
@require_POST
def builder_pin(request: HttpRequest, flow_id: int) -> JsonResponse:
    """A step's output and port in one of this flow's runs, for the canvas to pin as sample
    data (it goes into the draft with the next save)."""
    flow = owned_flow(request, flow_id)
    run_id = request.POST.get("run", "")
    row = (
        StepRun.objects.filter(
            run__flow=flow,
            run_id=int(run_id) if run_id.isdigit() else 0,
            step_id=request.POST.get("step", ""),
            scope="",
            status=StepRun.Status.SUCCEEDED,
        )
        .order_by("-id")
        .first()
    )
    if row is None:
        return JsonResponse({"error": "That step did not succeed in that run."}, status=404)
    return JsonResponse({"output": row.output, "port": row.port or "out"})


@login_required
@require_GET
def builder_sample(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = owned_flow(request, flow_id)
    event = sample_event(flow, request.GET.get("sample", ""))
    return render(
        request,
        "web/_event_editor.html",
        {"event_json": json.dumps(event if event is not None else {}, indent=2)},
    )


@login_required
@require_POST
def builder_test_run(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Save the draft and run it once on the chosen event, then stream it live."""
    flow = owned_flow(request, flow_id)
    try:
        event = jsonlimits.loads(request.POST.get("event", "") or "{}")
    except json.JSONDecodeError as exc:
        problem = f"The event is not valid JSON: {exc.msg} at line {exc.lineno}."
        return render(request, "web/_test_run.html", {"problem": problem}, status=400)
    except jsonlimits.TooDeep as exc:
        problem = f"The event cannot be used: {exc}."
        return render(request, "web/_test_run.html", {"problem": problem}, status=400)
    if not isinstance(event, dict):
        problem = 'The event must be a JSON object, like {"key": "value"}.'
        return render(request, "web/_test_run.html", {"problem": problem}, status=400)
    try:
        errors = checked_save(request, flow)
    except BadDocument as exc:
        return render(request, "web/_test_run.html", {"problem": str(exc)}, status=400)
    except DraftChanged:
        return conflict(request, flow)
    if errors:
        response = render(request, "web/_test_run.html", {"errors": errors}, status=422)
        return with_errors(response, errors, flow)
    run, _ = start_run(flow, trigger="manual", event=event, draft=True)
    response = render(request, "web/_test_run.html", live_context(run))
    return with_errors(response, [], flow)


@login_required
def builder_connection(request: HttpRequest, flow_id: int, service: str) -> HttpResponse:
    """The "create a new connection" dialog of a node: the service's connection form, a Test of
    what was typed (nothing is stored), and Save, which tells the canvas to bind the node to it."""
    owned_flow(request, flow_id)
    try:
        form_class = form_for(service)
    except KeyError as exc:
        raise Http404("No such service.") from exc
    form = form_class(request.POST or None, owner=request.user)
    context: dict[str, Any] = {
        "form": form,
        "service": service,
        "service_label": form_class.title,
        "instructions": form_class.instructions,
        "flow_id": flow_id,
    }
    if request.method != "POST":
        return render(request, "web/_connection_dialog.html", context)
    if not form.is_valid():
        return render(request, "web/_connection_dialog.html", context, status=422)
    if request.POST.get("action") == "test":
        ok, message = test_connection(form.save(commit=False))
        context["test"] = {"ok": ok, "message": message}
        return render(request, "web/_connection_dialog.html", context)
    connection = form.save()
    labelled([connection])
    context["saved"] = connection
    response = render(request, "web/_connection_dialog.html", context)
    return trigger_client_event(
        response,
        "connection-created",
        {"id": connection.pk, "name": connection.name, "service": connection.service},
    )
