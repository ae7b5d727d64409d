"""Each user sees only their own flows, runs, connections and logs: every URL that names a flow,
version, run or connection of user A answers 404 to user B, and so does the run's WebSocket."""

import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from flowbuilder.asgi import application
from flows.models import Flow, FlowVersion, LogLine, Run, StepRun
from integrations.models import Connection

from .conftest import make_user

FORM = {"document": "{}", "step": "{}", "event": "{}", "version": "latest"}
ID_KWARGS = {"flow_id", "run_id", "connection_id", "number", "step_id"}
# Webhook URLs carry the flow's secret token instead of a session: they are checked with the
# other user's own token, which must not reach user A's runs.
TOKEN_KWARGS = {"token"}
# Other parts of a route, the same for every user (the builder's new-connection dialog).
NAME_KWARGS = {"service"}


def all_patterns(resolver: URLResolver = None, prefix: str = "") -> list[tuple[str, URLPattern]]:
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            found.extend(all_patterns(entry, route))
        else:
            found.append((route, entry))
    return found


def owned_urls(ids: dict) -> list[str]:
    """Every route with an owned object's id in it, filled in with user A's ids."""
    urls = []
    for route, pattern in all_patterns():
        names = set(pattern.pattern.converters)
        if not names or not names & ID_KWARGS:
            continue
        assert names <= ID_KWARGS | TOKEN_KWARGS | NAME_KWARGS, (
            f"{route}: add a value for {names - ID_KWARGS}"
        )
        url = "/" + route
        for name in names:
            url = re.sub(rf"<\w+:{name}>", str(ids[name]), url)
        urls.append(url)
    return urls


@pytest.fixture
def alices_things(alice):
    flow = Flow.objects.create(owner=alice, name="Secret bot", slug="secret-bot", document={})
    FlowVersion.objects.create(
        flow=flow, number=1, document={}, plan={}, content_hash="x", author=alice
    )
    run = Run.objects.create(flow=flow, trigger="manual", event={"secret": "alice's event"})
    StepRun.objects.create(run=run, step_id="s", position=0, kind="code.python", output={"k": 1})
    LogLine.objects.create(run=run, seq=1, message="alice's log line")
    connection = Connection.objects.create(owner=alice, service="github", name="Alice GitHub")
    return {
        "flow_id": flow.pk,
        "run_id": run.pk,
        "connection_id": connection.pk,
        "number": 1,
        "step_id": "s",
        "service": "llm",
    }


def test_every_url_of_another_users_flow_run_or_connection_is_not_found(client, alices_things, bob):
    bobs_flow = Flow.objects.create(owner=bob, name="Bob's", slug="bobs", document={})
    urls = owned_urls({**alices_things, "token": bobs_flow.webhook_token})
    # The enumeration must cover the pages that matter (it is not vacuous).
    for expected in ("/flows/{flow_id}/", "/runs/{run_id}/", "/connections/{connection_id}/test/"):
        assert expected.format(**alices_things) in urls
    assert len(urls) >= 20
    client.force_login(bob)
    for url in urls:
        # A method the view does not take answers 405 before any lookup; the other one 404.
        answers = (client.get(url).status_code, client.post(url, FORM).status_code)
        assert set(answers) <= {404, 405} and 404 in answers, f"{url} answered {answers}"
    # Nothing was changed on Alice's side.
    assert Flow.objects.get(pk=alices_things["flow_id"]).name == "Secret bot"
    assert Connection.objects.filter(pk=alices_things["connection_id"]).exists()
    assert Run.objects.filter(flow_id=alices_things["flow_id"]).count() == 1


def test_lists_show_only_the_users_own_things(client, alices_things, bob):
    client.force_login(bob)
    for url in ("/dashboard/", "/runs/", "/connections/"):
        body = client.get(url).content.decode()
        assert "Secret bot" not in body
        assert "Alice GitHub" not in body
        assert f"Run #{alices_things['run_id']}" not in body


def test_anonymous_visitors_are_sent_to_log_in(client, alices_things):
    for url in owned_urls({**alices_things, "token": "no-such-token"}):
        if url.startswith("/hooks/"):
            continue  # no session: the token is the credential
        response = client.get(url)
        assert response.status_code in (302, 405), url
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/")


def session_headers(client, user) -> list[tuple[bytes, bytes]]:
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")]


async def first_message(path: str, headers) -> dict:
    """What the server says first on a new WebSocket: an event, or closing it."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return message


@pytest.mark.django_db(transaction=True)
def test_websockets_of_a_run_and_a_flow_refuse_another_user(client, alices_things):
    alice = Flow.objects.get(pk=alices_things["flow_id"]).owner
    bob = make_user("bob")
    run_path = f"/ws/runs/{alices_things['run_id']}/"
    flow_path = f"/ws/flows/{alices_things['flow_id']}/"
    as_bob = session_headers(client, bob)
    for path in (run_path, flow_path):
        assert async_to_sync(first_message)(path, as_bob) == {
            "type": "websocket.close",
            "code": 4403,
        }
    as_alice = session_headers(client, alice)
    message = async_to_sync(first_message)(run_path, as_alice)
    assert message["type"] == "websocket.send"
    assert "alice&#x27;s log line" in json.loads(message["text"])["html"]
