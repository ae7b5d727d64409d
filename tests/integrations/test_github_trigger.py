"""The GitHub webhook trigger, replaying real GitHub deliveries (tests/fakes/payloads)."""

from __future__ import annotations

import copy
import json
from urllib.parse import urlencode

import pytest

from flows.engine import pause_flow
from flows.models import Run
from tests.fakes.github import load_payload, sign

EVENTS = ["pull_request.opened", "pull_request.synchronize", "issue_comment.created"]
DOCUMENT = {
    "schema": "flowbuilder/flow@1",
    "name": "PR notes",
    "trigger": {
        "kind": "trigger.github",
        "config": {"events": EVENTS, "repository": "{{ settings.github_repo }}"},
    },
    "settings": {
        "github_repo": {"value": "Codertocat/Hello-World", "required": True, "description": "o/n"}
    },
    "connections": {},
    "steps": [
        {
            "id": "describe",
            "kind": "logic.template",
            "config": {
                "template": "{{ event.name }}.{{ event.action }} on "
                "{{ event.payload.repository.full_name }} ({{ event.delivery }})"
            },
        }
    ],
    "edges": [["trigger", "describe"]],
}


def with_trigger(**config) -> dict:
    doc = copy.deepcopy(DOCUMENT)
    doc["trigger"]["config"].update(config)
    return doc


def deliver(client, flow, event: str, body: bytes, *, secret: str | None = None, **headers):
    extra = {
        "HTTP_X_GITHUB_EVENT": event,
        "HTTP_X_GITHUB_DELIVERY": f"delivery-{event}",
        "HTTP_X_HUB_SIGNATURE_256": sign(flow.webhook_secret if secret is None else secret, body),
        **headers,
    }
    content_type = extra.pop("content_type", "application/json")
    return client.post(f"/hooks/github/{flow.webhook_token}/", body, content_type, **extra)


@pytest.mark.parametrize(
    "name,event,action",
    [
        ("pull_request.opened", "pull_request", "opened"),
        ("pull_request.synchronize", "pull_request", "synchronize"),
        ("issue_comment.created", "issue_comment", "created"),
    ],
)
def test_a_signed_matching_delivery_starts_a_run(client, make_flow, name, event, action):
    flow = make_flow(DOCUMENT)
    body = load_payload(name)
    response = deliver(client, flow, event, body)
    assert response.status_code == 202
    run = Run.objects.get(flow=flow)
    assert response.json() == {"run": run.pk}
    assert run.trigger == "github"
    assert run.delivery_id == f"delivery-{event}"
    assert run.event == {
        "name": event,
        "action": action,
        "payload": json.loads(body),
        "delivery": f"delivery-{event}",
    }
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": f"{event}.{action} on Codertocat/Hello-World (delivery-{event})"}


def test_a_wrong_signature_is_refused_with_401_and_starts_nothing(client, make_flow):
    flow = make_flow(DOCUMENT)
    response = deliver(
        client, flow, "pull_request", load_payload("pull_request.opened"), secret="not-the-secret"
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "The X-Hub-Signature-256 signature does not match: the GitHub webhook's secret "
        "is not this flow's webhook secret."
    }
    assert not Run.objects.exists()


def test_a_body_altered_after_signing_is_refused(client, make_flow):
    flow = make_flow(DOCUMENT)
    body = load_payload("pull_request.opened")
    signature = sign(flow.webhook_secret, body)
    tampered = body.replace(b'"opened"', b'"closed"', 1)
    response = client.post(
        f"/hooks/github/{flow.webhook_token}/",
        tampered,
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_HUB_SIGNATURE_256=signature,
    )
    assert response.status_code == 401
    assert not Run.objects.exists()


def test_a_missing_signature_is_refused_with_401(client, make_flow):
    flow = make_flow(DOCUMENT)
    response = client.post(
        f"/hooks/github/{flow.webhook_token}/",
        load_payload("pull_request.opened"),
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "The delivery has no X-Hub-Signature-256 header: set this flow's webhook secret "
        "as the secret of the GitHub webhook."
    }


def test_ping_is_answered_with_githubs_zen(client, make_flow):
    flow = make_flow(DOCUMENT)
    response = deliver(client, flow, "ping", load_payload("ping"))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "zen": "Anything added dilutes everything else."}
    assert not Run.objects.exists()


def test_an_action_not_listed_is_ignored_with_the_reason(client, make_flow):
    flow = make_flow(DOCUMENT)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.closed"))
    assert response.status_code == 200
    assert response.json() == {
        "ignored": "event pull_request.closed is not one of this flow's events "
        "(pull_request.opened, pull_request.synchronize, issue_comment.created)"
    }
    assert not Run.objects.exists()


@pytest.mark.parametrize("name,event", [("push", "push"), ("issues.opened", "issues")])
def test_unknown_events_are_ignored(client, make_flow, name, event):
    flow = make_flow(DOCUMENT)
    response = deliver(client, flow, event, load_payload(name))
    assert response.status_code == 200
    assert response.json()["ignored"].startswith(f"event {name} is not one of this flow's events")
    assert not Run.objects.exists()


def test_an_event_without_an_action_means_any_action(client, make_flow):
    flow = make_flow(with_trigger(events=["pull_request"]))
    response = deliver(client, flow, "pull_request", load_payload("pull_request.closed"))
    assert response.status_code == 202


def test_another_repository_is_ignored(client, make_flow):
    doc = copy.deepcopy(DOCUMENT)
    doc["settings"]["github_repo"]["value"] = "octo/other"
    flow = make_flow(doc)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.json() == {"ignored": "repository Codertocat/Hello-World is not octo/other"}
    assert not Run.objects.exists()


def test_repository_is_compared_without_case(client, make_flow):
    flow = make_flow(with_trigger(repository="codertocat/hello-world"))
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.status_code == 202


def test_a_repeated_delivery_runs_once(client, make_flow):
    flow = make_flow(DOCUMENT)
    body = load_payload("pull_request.opened")
    first = deliver(client, flow, "pull_request", body)
    again = deliver(client, flow, "pull_request", body)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"run": first.json()["run"], "duplicate": True}
    assert Run.objects.filter(flow=flow).count() == 1


def test_form_encoded_deliveries_are_read_too(client, make_flow):
    flow = make_flow(DOCUMENT)
    body = urlencode({"payload": load_payload("pull_request.opened").decode()}).encode()
    response = deliver(
        client, flow, "pull_request", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 202
    assert Run.objects.get(flow=flow).event["payload"]["number"] == 2


def test_an_unknown_token_is_404(client, make_flow):
    make_flow(DOCUMENT)
    response = client.post("/hooks/github/nope/", b"{}", "application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "No flow has this webhook URL."}


def test_a_flow_not_deployed_answers_409(client, make_flow):
    flow = make_flow(DOCUMENT, deployed=False)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.status_code == 409
    assert response.json() == {
        "error": "This flow is not deployed yet: deploy it to start runs from events."
    }


def test_a_paused_flow_answers_409(client, make_flow):
    flow = make_flow(DOCUMENT)
    pause_flow(flow)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.status_code == 409
    assert response.json() == {"error": "The flow 'PR notes' is paused: resume it to run it again."}


def test_a_flow_with_another_trigger_answers_409(client, make_flow):
    doc = copy.deepcopy(DOCUMENT)
    doc["trigger"] = {"kind": "trigger.webhook", "config": {}}
    flow = make_flow(doc)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.status_code == 409
    assert response.json() == {
        "error": "This flow is started by trigger.webhook, not by trigger.github."
    }


def test_a_body_over_the_limit_is_413(client, make_flow, settings):
    settings.FLOWS_WEBHOOK_MAX_BYTES = 1000
    flow = make_flow(DOCUMENT)
    response = deliver(client, flow, "pull_request", load_payload("pull_request.opened"))
    assert response.status_code == 413
    assert response.json() == {"error": "The body is larger than the limit of 1,000 bytes."}


def test_only_post_is_accepted(client, make_flow):
    flow = make_flow(DOCUMENT)
    response = client.get(f"/hooks/github/{flow.webhook_token}/")
    assert response.status_code == 405
    assert response.json() == {"error": "GitHub delivers webhooks with POST."}
