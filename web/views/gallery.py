"""The template gallery and "Use template", which copies a template into the user's flows."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from gallery.registry import TemplateNotFound, list_templates, use_template

from ..forms import service_label


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    templates = [
        {"spec": spec, "services": [service_label(s) for s in spec.services]}
        for spec in list_templates()
    ]
    return render(request, "web/gallery.html", {"templates": templates})


@login_required
@require_POST
def template_use(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        flow = use_template(slug, request.user)
    except TemplateNotFound as exc:
        raise Http404(str(exc)) from exc
    messages.success(
        request,
        f"“{flow.name}” is now one of your flows. Connect its services and fill in its settings.",
    )
    return redirect("flow_setup", flow_id=flow.pk)
