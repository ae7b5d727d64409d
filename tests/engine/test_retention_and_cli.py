import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from flows.engine import start_run
from flows.models import Flow, Run
from integrations.models import Connection

from .conftest import document

pytestmark = pytest.mark.django_db


def test_prune_runs_keeps_recent_runs_within_the_count(make_flow, settings, capsys):
    settings.FLOWS_RUN_RETENTION_DAYS = 7
    settings.FLOWS_RUN_RETENTION_COUNT = 2
    flow = make_flow()
    runs = [
        start_run(flow, trigger="webhook", event={"body": {"name": str(i)}})[0] for i in range(4)
    ]
    old = runs[0]
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    for i, run in enumerate(runs[1:], start=1):
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=10 - i))
    running = Run.objects.create(flow=flow, plan={}, trigger="webhook", status=Run.Status.RUNNING)
    call_command("prune_runs")
    assert capsys.readouterr().out == (
        "Deleted 1 run(s) past the retention age and 1 beyond the per-flow count.\n"
    )
    assert set(Run.objects.values_list("pk", flat=True)) == {runs[2].pk, runs[3].pk, running.pk}


def test_export_holds_no_secrets_and_import_binds_the_owners_connection(user, tmp_path, capsys):
    github = Connection(owner=user, service="github", name="gh")
    github.set_secrets({"token": "ghp_secret_value"})
    github.save()
    doc = document(
        settings={"api_key": {"value": "typed-in-key", "secret": True}, "greeting": "Hi"},
        connections={"github": {"service": "github", "connection": github.pk}},
    )
    Flow.objects.create(owner=user, name="Greeter", slug="greeter", document=doc)
    out = tmp_path / "flow.json"
    call_command("flows", "export", "ada/greeter", "-o", str(out))
    text = out.read_text()
    assert "ghp_secret_value" not in text and "typed-in-key" not in text
    exported = json.loads(text)
    assert exported["connections"] == {"github": {"service": "github"}}
    assert exported["settings"]["api_key"] == {"value": "", "secret": True}

    call_command("flows", "import", str(out), "--owner", "ada")
    imported = Flow.objects.get(slug="greeter-2")
    assert capsys.readouterr().out.endswith(f"Imported flow {imported.pk} as ada/greeter-2\n")
    assert imported.document["connections"] == {
        "github": {"service": "github", "connection": github.pk}
    }
    assert imported.status == Flow.Status.DRAFT


def test_deploy_and_run_from_the_command_line(make_flow, tmp_path, capsys):
    flow = make_flow(deployed=False, slug="greeter")
    call_command("flows", "deploy", str(flow.pk))
    assert capsys.readouterr().out == "Deployed ada/greeter version 1\n"
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"body": {"name": "Cli"}}))
    call_command("flows", "run", "ada/greeter", "--event", str(event))
    out = capsys.readouterr().out.splitlines()
    run = Run.objects.get(flow=flow)
    assert out[0] == f"Run {run.pk} of ada/greeter"
    assert out[1] == f"Run {run.pk} succeeded"
    assert json.loads("\n".join(out[2:])) == {"text": "Hello, Cli!"}


def test_a_failing_run_prints_its_logs_and_exits_non_zero(make_flow, flaky_block, capsys):
    flow = make_flow(
        document(
            steps=[
                {
                    "id": "flaky",
                    "kind": "test.flaky",
                    "config": {"succeed_on": 5},
                    "retry": {"max_attempts": 1},
                }
            ],
            edges=[],
        ),
        slug="flaky",
    )
    with pytest.raises(SystemExit) as exited:
        call_command("flows", "run", "ada/flaky")
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].endswith("flaky info: call 1")
    run = Run.objects.get(flow=flow)
    assert captured.err == f"Run {run.pk} failed: step 'flaky': the service is busy\n"


def test_command_line_errors_are_clear(make_flow, tmp_path):
    with pytest.raises(CommandError, match="No flow 'ada/nope'."):
        call_command("flows", "deploy", "ada/nope")
    broken = make_flow(
        document(steps=[{"id": "x", "kind": "nope"}], edges=[]), deployed=False, slug="b"
    )
    with pytest.raises(CommandError) as caught:
        call_command("flows", "deploy", str(broken.pk))
    assert str(caught.value) == "the flow does not compile:\n  - step 'x': unknown block 'nope'"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CommandError, match="bad.json is not valid JSON"):
        call_command("flows", "import", str(bad), "--owner", "ada")
