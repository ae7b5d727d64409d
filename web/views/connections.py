"""Connections: add (a form per service from integrations.forms), test, and delete credentials."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from flows.models import Flow
from integrations.forms import SERVICE_FORMS, form_for
from integrations.models import Connection
from integrations.services import test_connection


def owned_connection(request: HttpRequest, connection_id: int) -> Connection:
    return get_object_or_404(Connection.objects.owned_by(request.user), pk=connection_id)


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def labelled(connections: list[Connection]) -> list[Connection]:
    for connection in connections:
        form_class = SERVICE_FORMS.get(connection.service)
        connection.service_label = form_class.title if form_class else connection.service
    return connections


@login_required
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = labelled(list(Connection.objects.owned_by(request.user)))
    services = [(service, form.title) for service, form in SERVICE_FORMS.items()]
    return render(
        request,
        "web/connection_list.html",
        {"connections": connections, "services": services},
    )


def connection_form_page(
    request: HttpRequest, service: str, connection: Connection | None = None
) -> HttpResponse:
    try:
        form_class = form_for(service)
    except KeyError as exc:
        raise Http404("No such service.") from exc
    next_url = safe_next(request, "")
    form = form_class(request.POST or None, owner=request.user, instance=connection)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        verb = "Updated" if connection else "Saved"
        messages.success(request, f"{verb} the {form_class.title} connection “{saved.name}”.")
        return redirect(next_url or "connection_list")
    return render(
        request,
        "web/connection_form.html",
        {
            "form": form,
            "connection": connection,
            "service_label": form_class.title,
            "instructions": form_class.instructions,
            "next": next_url,
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def connection_create(request: HttpRequest, service: str) -> HttpResponse:
    return connection_form_page(request, service)


@login_required
def connection_edit(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = owned_connection(request, connection_id)
    return connection_form_page(request, connection.service, connection)


@login_required
@require_POST
def connection_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = owned_connection(request, connection_id)
    ok, message = test_connection(connection)
    connection.refresh_from_db()
    if request.htmx:
        labelled([connection])
        return render(request, "web/_connection_row.html", {"connection": connection})
    if ok:
        messages.success(request, f"“{connection.name}” works: {message}")
    else:
        messages.error(request, f"“{connection.name}” does not work: {message}")
    return redirect("connection_list")


def flows_using(connection: Connection) -> list[Flow]:
    return [
        flow
        for flow in Flow.objects.owned_by(connection.owner)
        if any(
            isinstance(spec, dict) and spec.get("connection") == connection.pk
            for spec in ((flow.document or {}).get("connections") or {}).values()
        )
    ]


@login_required
def connection_delete(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = owned_connection(request, connection_id)
    if request.method == "POST":
        name = connection.name
        connection.delete()
        messages.success(request, f"Deleted the connection “{name}” and its credentials.")
        return redirect("connection_list")
    return render(
        request,
        "web/connection_delete.html",
        {"connection": connection, "flows": flows_using(connection)},
    )
