"""The dashboard: the user's flows with status, last run and success rate; creating flows."""

from datetime import timedelta

from django.utils import timezone

from flows.models import Flow, Run


def test_an_empty_dashboard_points_to_templates_and_blank_flows(alice_client):
    body = alice_client.get("/dashboard/").content.decode()
    assert "You have no flows yet" in body
    assert 'href="/templates/"' in body
    assert "Create a blank flow" in body


def test_flows_show_status_last_run_and_success_rate(alice_client, greeter):
    now = timezone.now()
    for minutes, status in (
        (40, "succeeded"),
        (30, "succeeded"),
        (20, "failed"),
        (10, "succeeded"),
    ):
        Run.objects.create(
            flow=greeter,
            trigger="manual",
            status=status,
            created_at=now - timedelta(minutes=minutes),
        )
    last = Run.objects.create(flow=greeter, trigger="github", status="running", created_at=now)
    body = alice_client.get("/dashboard/").content.decode()
    assert "Greeter" in body
    assert '<span class="badge draft">Draft</span>' in body
    assert f'href="/runs/{last.pk}/"><span class="badge running">Running</span>' in body
    assert "75% <span" in body
    assert "of 4</span>" in body


def test_a_flow_that_never_ran_says_so(alice_client, greeter):
    body = alice_client.get("/dashboard/").content.decode()
    assert "Never run" in body


def test_creating_a_blank_flow_opens_the_builder(alice_client, alice):
    response = alice_client.post("/flows/new/", {"name": "Triage issues"})
    flow = Flow.objects.get(owner=alice)
    assert response["Location"] == f"/flows/{flow.pk}/builder/"
    assert flow.slug == "triage-issues"
    assert flow.document["trigger"] == {"kind": "trigger.manual", "config": {}}
    assert flow.document["steps"] == []
    again = alice_client.post("/flows/new/", {"name": "Triage issues"})
    assert again.status_code == 302
    assert sorted(Flow.objects.values_list("slug", flat=True)) == [
        "triage-issues",
        "triage-issues-2",
    ]


def test_a_flow_needs_a_name(alice_client):
    response = alice_client.post("/flows/new/", {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Flow.objects.exists()
