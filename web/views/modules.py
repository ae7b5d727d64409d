"""A user's uploaded Wasm modules: the list (with what each asks for and the flows using it),
upload outside the builder, details for the builder's module picker, and delete, refused while
a flow uses the module."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from flows import capabilities as capability_registry
from flows.models import Artifact
from flows.modules import (
    ModuleInUse,
    delete_module,
    flows_using,
    module_details,
    upload_module,
)
from flows.sandbox import SandboxError


def details_context(artifact: Artifact, uploaded: bool = False) -> dict:
    details = module_details(artifact)
    return {
        "module": details,
        "uploaded": uploaded,
        "unknown": [c for c in details.capabilities if capability_registry.get(c) is None],
        "capabilities_json": json.dumps(details.capabilities),
    }


def details_response(request: HttpRequest, artifact: Artifact, uploaded: bool) -> HttpResponse:
    """The module's details for the builder, telling the node form which digest to use."""
    try:
        context = details_context(artifact, uploaded)
    except SandboxError as exc:
        return render(request, "web/_upload_result.html", {"problem": str(exc)}, status=400)
    response = render(request, "web/_upload_result.html", context)
    return trigger_client_event(
        response,
        "artifact-uploaded",
        {"digest": artifact.digest, "name": artifact.name, "imports": artifact.imports},
    )


def upload_from(request: HttpRequest) -> tuple[Artifact | None, str]:
    """The module posted as `module`, uploaded for the user, or why it was not."""
    upload = request.FILES.get("module")
    if upload is None:
        return None, "Choose a .wasm file first."
    try:
        return upload_module(request.user, upload.name, upload.read()), ""
    except SandboxError as exc:
        return None, f"{upload.name} was not uploaded: {exc}"


@login_required
def module_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        artifact, problem = upload_from(request)
        if artifact is not None:
            messages.success(request, f"Uploaded {artifact.name}.")
            return redirect("module_list")
        messages.error(request, problem)
    modules = []
    for artifact in Artifact.objects.owned_by(request.user).order_by("name", "-created_at"):
        modules.append({"artifact": artifact, "flows": flows_using(artifact)})
    return render(request, "web/module_list.html", {"modules": modules})


@login_required
@require_GET
def module_choose(request: HttpRequest) -> HttpResponse:
    """The details of one of the user's modules, chosen in a Wasm step's form."""
    digest = request.GET.get("digest", "")
    artifact = get_object_or_404(Artifact.objects.owned_by(request.user), digest=digest)
    return details_response(request, artifact, uploaded=False)


@login_required
@require_POST
def module_delete(request: HttpRequest, artifact_id: int) -> HttpResponse:
    artifact = get_object_or_404(Artifact.objects.owned_by(request.user), pk=artifact_id)
    try:
        delete_module(artifact)
    except ModuleInUse as exc:
        messages.error(request, f"Not deleted: {exc}.")
    else:
        messages.success(request, f"Deleted the module {artifact.name}.")
    return redirect("module_list")
