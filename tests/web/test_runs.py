"""Run history across flows and per flow with filters, the run page's timeline, and re-runs."""

from datetime import timedelta

from django.utils import timezone

from flows.compiler import deploy
from flows.models import Flow, LogLine, Run, StepRun

from .conftest import greeter_document


def make_runs(alice, greeter):
    other = Flow.objects.create(
        owner=alice, name="Other", slug="other", document=greeter_document()
    )
    now = timezone.now()
    return {
        "ok_manual": Run.objects.create(
            flow=greeter, trigger="manual", status="succeeded", created_at=now - timedelta(days=3)
        ),
        "failed_github": Run.objects.create(
            flow=greeter, trigger="github", status="failed", created_at=now - timedelta(days=1)
        ),
        "other_webhook": Run.objects.create(
            flow=other, trigger="webhook", status="succeeded", created_at=now
        ),
    }


def shown(body: str, runs: dict) -> set[str]:
    return {name for name, run in runs.items() if f'href="/runs/{run.pk}/"' in body}


def test_history_across_flows_and_per_flow(alice_client, alice, greeter):
    runs = make_runs(alice, greeter)
    everything = alice_client.get("/runs/").content.decode()
    assert shown(everything, runs) == {"ok_manual", "failed_github", "other_webhook"}
    per_flow = alice_client.get(f"/flows/{greeter.pk}/runs/").content.decode()
    assert shown(per_flow, runs) == {"ok_manual", "failed_github"}


def test_history_filters_by_status_trigger_and_date(alice_client, alice, greeter):
    runs = make_runs(alice, greeter)
    by_status = alice_client.get("/runs/?status=failed").content.decode()
    assert shown(by_status, runs) == {"failed_github"}
    by_trigger = alice_client.get("/runs/?trigger=webhook").content.decode()
    assert shown(by_trigger, runs) == {"other_webhook"}
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    by_date = alice_client.get(f"/runs/?date_from={since}").content.decode()
    assert shown(by_date, runs) == {"failed_github", "other_webhook"}
    nothing = alice_client.get("/runs/?status=cancelled").content.decode()
    assert "No runs match these filters." in nothing


def test_filters_answer_htmx_with_the_table_only(alice_client, alice, greeter):
    make_runs(alice, greeter)
    response = alice_client.get("/runs/?status=failed", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith("<table")
    assert "<html" not in body


def test_an_end_date_before_the_start_date_is_explained(alice_client):
    body = alice_client.get("/runs/?date_from=2025-02-01&date_to=2025-01-01").content.decode()
    assert "The end date is before the start date." in body


def test_run_page_shows_the_timeline_with_inputs_outputs_and_logs(alice_client, greeter):
    run = Run.objects.create(
        flow=greeter,
        trigger="manual",
        status="succeeded",
        event={"name": "Ada"},
        plan={"steps": [{"id": "fetch", "kind": "code.python"}, {"id": "greet", "kind": "x"}]},
        started_at=timezone.now(),
        finished_at=timezone.now() + timedelta(milliseconds=1500),
    )
    StepRun.objects.create(
        run=run,
        step_id="fetch",
        position=0,
        kind="code.python",
        status="succeeded",
        input={"name": "Ada"},
        output={"files": [f"file{i}.py" for i in range(30)]},
        duration_ms=12.4,
        fuel_used=3_500_000,
        tokens={"total_tokens": 321},
    )
    StepRun.objects.create(
        run=run,
        step_id="greet",
        position=1,
        kind="logic.template",
        status="failed",
        error="step 'greet': template error",
        duration_ms=1500,
    )
    LogLine.objects.create(
        run=run, seq=1, step_id="fetch", level="info", message="fetched 30 files"
    )
    body = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert "1.5 s" in body
    assert '<span title="Duration">12 ms</span>' in body
    assert "fuel 3.5 M" in body
    assert "321 tokens" in body
    # A large output is folded; a small input is shown as it is.
    assert "<details><summary>Output" in body
    assert "&quot;file29.py&quot;" in body
    assert (
        '<div class="json-label">Input</div><pre>{\n  &quot;name&quot;: &quot;Ada&quot;\n}</pre>'
        in body
    )
    assert "step &#x27;greet&#x27;: template error" in body
    assert f'id="run-{run.pk}-log-1"' in body
    assert "fetched 30 files" in body
    assert "ws-connect" not in body


def test_a_running_run_listens_on_its_websocket_and_lists_steps_not_started(alice_client, greeter):
    run = Run.objects.create(
        flow=greeter,
        trigger="manual",
        status="running",
        plan={"steps": [{"id": "greet", "kind": "logic.template"}]},
    )
    body = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'ws-connect="/ws/runs/{run.pk}/"' in body
    assert f'id="run-{run.pk}-log"' in body
    assert f'id="run-{run.pk}-step-greet"' in body
    assert "Not started" in body
    step = alice_client.get(f"/runs/{run.pk}/live/steps/greet/").content.decode()
    assert step.startswith(f'<li class="step pending" id="run-{run.pk}-item-greet">')


def test_rerun_on_the_same_or_the_latest_version(alice_client, alice, greeter):
    first = deploy(greeter, alice)
    greeter.document["steps"][0]["config"]["template"] = "Hi {{ event.name }}"
    greeter.save()
    second = deploy(greeter, alice)
    run = Run.objects.create(
        flow=greeter,
        version=first,
        plan=first.plan,
        trigger="manual",
        event={"name": "Ada"},
        status="succeeded",
    )
    same = alice_client.post(f"/runs/{run.pk}/rerun/", {"version": "same"})
    rerun = Run.objects.exclude(pk=run.pk).get()
    assert same["Location"] == f"/runs/{rerun.pk}/"
    assert (rerun.version, rerun.rerun_of, rerun.event) == (first, run, {"name": "Ada"})
    alice_client.post(f"/runs/{run.pk}/rerun/", {"version": "latest"})
    latest = Run.objects.order_by("-id").first()
    assert (latest.version, latest.rerun_of) == (second, run)
