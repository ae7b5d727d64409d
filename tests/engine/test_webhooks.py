import json

import pytest

from flows.engine import pause_flow
from flows.models import Run

from .conftest import document

pytestmark = pytest.mark.django_db


def post(client, flow_or_token, body=b"", content_type="application/json", query="", **headers):
    token = getattr(flow_or_token, "webhook_token", flow_or_token)
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return client.post(f"/hooks/{token}/{query}", body, content_type=content_type, headers=headers)


def test_a_json_post_starts_a_run_and_answers_202_with_a_status_url(client, make_flow):
    flow = make_flow()
    response = post(client, flow, {"name": "Ada"}, query="?x=1", **{"X-Custom": "yes"})
    assert response.status_code == 202
    run = Run.objects.get(flow=flow)
    status_url = f"http://testserver/hooks/{flow.webhook_token}/runs/{run.pk}/"
    assert response.json() == {"run_id": run.pk, "status": "queued", "status_url": status_url}
    assert run.trigger == "webhook"
    assert run.event["body"] == {"name": "Ada"}
    assert run.event["query"] == {"x": "1"}
    assert run.event["headers"]["x-custom"] == "yes"
    assert run.event["method"] == "POST"

    status = client.get(status_url)
    assert status.status_code == 200
    assert status.json() | {"created_at": None, "finished_at": None} == {
        "run_id": run.pk,
        "status": "succeeded",
        "output": {"text": "Hello, Ada!"},
        "error": "",
        "created_at": None,
        "finished_at": None,
    }


def test_the_status_url_belongs_to_its_webhook_only(client, make_flow):
    flow = make_flow()
    other = make_flow(slug="other")
    run_id = post(client, flow, {"name": "A"}).json()["run_id"]
    response = client.get(f"/hooks/{other.webhook_token}/runs/{run_id}/")
    assert response.status_code == 404
    assert response.json() == {"error": "No run with this id belongs to this webhook."}


def test_wait_answers_with_the_runs_output(client, make_flow):
    flow = make_flow()
    response = post(client, flow, {"name": "Ada"}, query="?wait=5")
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["output"] == {"text": "Hello, Ada!"}


def test_wait_gives_up_with_202_when_the_run_is_not_done(client, make_flow, settings):
    # The embedded executor starts runs once their transaction commits, which this test's never does.
    settings.FLOWS_EXECUTOR = "embedded"
    flow = make_flow()
    response = post(client, flow, {"name": "Ada"}, query="?wait=0.2")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_form_posts_and_plain_text_are_accepted(client, make_flow):
    flow = make_flow()
    response = client.post(f"/hooks/{flow.webhook_token}/", {"name": "Form", "tag": ["a", "b"]})
    assert response.status_code == 202
    assert Run.objects.get(pk=response.json()["run_id"]).event["body"] == {
        "name": "Form",
        "tag": ["a", "b"],
    }
    response = post(client, flow, "just text", content_type="text/plain")
    assert Run.objects.get(pk=response.json()["run_id"]).event["body"] == "just text"


def test_malformed_json_is_refused_with_400_and_writes_nothing(client, make_flow):
    flow = make_flow()
    response = post(client, flow, b'{"name": ')
    assert response.status_code == 400
    assert response.json() == {
        "error": "The request body is not valid JSON: Expecting value at line 1 column 10."
    }
    assert not Run.objects.exists()


def test_json_nested_too_deep_is_refused_with_400_and_writes_nothing(client, make_flow):
    flow = make_flow()
    for depth in (150, 100_000):
        response = post(client, flow, b"[" * depth + b"]" * depth)
        assert response.status_code == 400
        assert response.json() == {
            "error": "The request body is refused: it is nested more than 100 levels deep."
        }
    assert not Run.objects.exists()


def test_oversized_bodies_are_refused_with_413_and_write_nothing(client, make_flow, settings):
    settings.FLOWS_WEBHOOK_MAX_BYTES = 100
    flow = make_flow()
    response = post(client, flow, {"name": "x" * 200})
    assert response.status_code == 413
    assert response.json() == {
        "error": "The request body is larger than this server's limit of 100 bytes."
    }
    assert not Run.objects.exists()


def test_a_repeated_delivery_answers_200_with_the_first_run(client, make_flow):
    flow = make_flow()
    first = post(client, flow, {"name": "A"}, **{"X-GitHub-Delivery": "abc-1"})
    again = post(client, flow, {"name": "A"}, **{"X-GitHub-Delivery": "abc-1"})
    other = post(client, flow, {"name": "A"}, **{"X-Delivery-Id": "abc-2"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["duplicate"] is True
    assert Run.objects.filter(flow=flow).count() == 2


def test_paused_undeployed_and_unknown_flows_are_refused(client, make_flow):
    paused = make_flow()
    pause_flow(paused)
    response = post(client, paused, {})
    assert response.status_code == 409
    assert response.json() == {"error": "The flow 'Greeter' is paused: resume it to run it again."}

    draft = make_flow(deployed=False, slug="draft")
    response = post(client, draft, {})
    assert response.status_code == 409
    assert response.json() == {
        "error": "The flow 'Greeter' is not deployed: deploy it before triggering it."
    }

    response = post(client, "no-such-token", {})
    assert response.status_code == 404
    assert response.json() == {"error": "No flow has this webhook URL."}
    assert not Run.objects.exists()


def test_a_flow_with_another_trigger_refuses_webhooks(client, make_flow):
    flow = make_flow(document(trigger={"kind": "trigger.manual", "config": {}}))
    response = post(client, flow, {})
    assert response.status_code == 409
    assert response.json() == {
        "error": "The flow 'Greeter' is triggered by 'trigger.manual', not by webhooks: change "
        "its trigger to Webhook and deploy it."
    }


def test_only_post_starts_runs(client, make_flow):
    flow = make_flow()
    response = client.get(f"/hooks/{flow.webhook_token}/")
    assert response.status_code == 405
    assert response.json() == {"error": "Send the event with POST."}


def _asgi_request(method: str, path: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One HTTP request through the ASGI application that the servers run."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from flowbuilder.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def exchange() -> tuple[int, dict, bytes]:
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": body})
        start = await communicator.receive_output(10)
        content = b""
        while True:
            part = await communicator.receive_output(10)
            content += part.get("body", b"")
            if not part.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, content

    return async_to_sync(exchange)()


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_serves_webhooks_without_the_pages_middleware(make_flow):
    flow = make_flow()
    status, headers, content = _asgi_request(
        "POST", f"/hooks/{flow.webhook_token}/", json.dumps({"name": "Ada"}).encode()
    )
    assert status == 202
    run = Run.objects.get(pk=json.loads(content)["run_id"])
    assert run.status == "succeeded" and run.output == {"text": "Hello, Ada!"}
    # Hooks answer machines: none of the pages' headers and cookies (middleware) is added.
    assert "x-frame-options" not in headers and "set-cookie" not in headers

    status, _, content = _asgi_request("GET", f"/hooks/{flow.webhook_token}/runs/{run.pk}/")
    assert (status, json.loads(content)["status"]) == (200, "succeeded")
    status, _, content = _asgi_request("GET", "/hooks/no-such-token/runs/1/")
    assert (status, json.loads(content)) == (
        404,
        {"error": "No run with this id belongs to this webhook."},
    )

    # Pages still go through the whole middleware stack.
    status, headers, _ = _asgi_request("GET", "/accounts/login/")
    assert status == 200 and headers["x-frame-options"] == "DENY"


def test_a_deployed_plan_is_read_once_and_a_new_deploy_is_used_at_once(client, make_flow):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from flows.compiler import deploy

    from .conftest import last_run

    flow = make_flow()

    def post_reading_versions(name: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert post(client, flow, {"name": name}).status_code == 202
        return sum("flows_flowversion" in q["sql"] for q in queries.captured_queries)

    assert post_reading_versions("Ada") == 1
    assert post_reading_versions("Bob") == 0  # the plan of that version, from memory
    assert last_run(flow).output == {"text": "Hello, Bob!"}

    flow.document = document(settings={"greeting": {"value": "Hi", "description": ""}})
    flow.save()
    version = deploy(flow, flow.owner)
    assert post_reading_versions("Cy") == 1
    run = last_run(flow)
    assert (run.version_id, run.output) == (version.pk, {"text": "Hi, Cy!"})
