import pytest

from flows.engine import FlowNotDeployed, FlowPaused, pause_flow, rerun, resume_flow, start_run
from flows.engine.executor import WORKER_LOST, claim, execute_run, sweep_stale_runs
from flows.models import KVEntry, LogLine, Run, StepRun
from integrations.models import Connection

from .conftest import document, last_run

pytestmark = pytest.mark.django_db


def test_a_run_executes_its_steps_in_order_and_keeps_inputs_and_outputs(make_flow):
    flow = make_flow()
    run, created = start_run(flow, trigger="webhook", event={"body": {"name": "Ada"}})
    run.refresh_from_db()
    assert created
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == {"text": "Hello, Ada!"}
    assert run.attempts == 1 and run.started_at and run.finished_at
    steps = list(run.steps.values_list("step_id", "status", "attempt", "input", "output"))
    assert steps == [
        (
            "only_named",
            "succeeded",
            1,
            {"condition": "Ada", "reason": "no name given"},
            {"passed": True},
        ),
        (
            "greet",
            "succeeded",
            1,
            {"template": "Hello, Ada!"},
            {"text": "Hello, Ada!"},
        ),
    ]
    assert run.version == flow.current_version and run.plan == flow.current_version.plan


def test_a_false_filter_ends_the_run_as_skipped(make_flow):
    flow = make_flow()
    run, _ = start_run(flow, trigger="webhook", event={"body": {}})
    run.refresh_from_db()
    assert run.status == Run.Status.SKIPPED
    assert run.error == "step 'only_named': no name given"
    assert run.output == {"passed": False}
    assert list(run.steps.values_list("step_id", flat=True)) == ["only_named"]
    assert list(run.log_lines.values_list("step_id", "message")) == [
        ("only_named", "run skipped: no name given")
    ]


def test_a_single_expression_keeps_its_type_and_missing_values_are_lenient(make_flow):
    flow = make_flow(
        document(
            steps=[
                {
                    "id": "store",
                    "kind": "kv.set",
                    "config": {"key": "n-{{ event.body.n }}", "value": "{{ event.body.items }}"},
                },
                {"id": "load", "kind": "kv.get", "config": {"key": "n-{{ event.body.n }}"}},
                {
                    "id": "say",
                    "kind": "logic.template",
                    "config": {
                        "template": "{{ steps.load.value | length }} items, "
                        "[{{ event.body.missing.deeper }}]"
                    },
                },
            ],
            edges=[],
        )
    )
    run, _ = start_run(flow, trigger="webhook", event={"body": {"n": 3, "items": [1, 2]}})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output == {"text": "2 items, []"}
    assert KVEntry.objects.get(flow=flow, key="n-3").value == [1, 2]


def test_retryable_errors_are_retried_with_backoff_until_they_pass(make_flow, flaky_block):
    flow = make_flow(
        document(
            steps=[{"id": "flaky", "kind": "test.flaky", "config": {"succeed_on": 3}}], edges=[]
        )
    )
    run, _ = start_run(flow, trigger="webhook", event={})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert list(run.steps.values_list("attempt", "status", "error")) == [
        (1, "failed", "the service is busy"),
        (2, "failed", "the service is busy"),
        (3, "succeeded", ""),
    ]
    messages = list(run.log_lines.values_list("seq", "message"))
    assert messages == [
        (1, "call 1"),
        (2, "attempt 1 failed (the service is busy); retrying in 0.01 s"),
        (3, "call 2"),
        (4, "attempt 2 failed (the service is busy); retrying in 0.02 s"),
        (5, "call 3"),
    ]


def test_retries_stop_at_the_steps_limit(make_flow, flaky_block):
    flow = make_flow(
        document(
            steps=[
                {
                    "id": "flaky",
                    "kind": "test.flaky",
                    "config": {"succeed_on": 10},
                    "retry": {"max_attempts": 2, "backoff_s": 0},
                }
            ],
            edges=[],
        )
    )
    run, _ = start_run(flow, trigger="webhook", event={})
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error == "step 'flaky': the service is busy"
    assert run.steps.count() == 2


def test_secrets_of_bound_connections_are_redacted_from_logs_and_errors(
    user, make_flow, secret_service
):
    vault = Connection(owner=user, service="vault", name="vault")
    vault.set_secrets({"token": "s3cr3t-token-value"})
    vault.save()
    flow = make_flow(
        document(
            connections={"vault": {"service": "vault", "connection": vault.pk}},
            steps=[{"id": "read", "kind": "test.vault.read", "config": {}}],
            edges=[],
        )
    )
    run, _ = start_run(flow, trigger="webhook", event={})
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error == "step 'read': vault refused token [redacted]"
    step = run.steps.get()
    assert step.error == "vault refused token [redacted]"
    assert step.tokens == {"total_tokens": 7}
    assert list(run.log_lines.values_list("message", flat=True)) == [
        "authenticating with [redacted]"
    ]


def test_paused_and_undeployed_flows_do_not_start_but_draft_runs_do(make_flow):
    draft = make_flow(deployed=False)
    with pytest.raises(FlowNotDeployed, match="The flow 'Greeter' is not deployed"):
        start_run(draft, trigger="webhook", event={})
    run, _ = start_run(draft, trigger="manual", event={"body": {"name": "Bo"}}, draft=True)
    run.refresh_from_db()
    assert run.version is None and run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "Hello, Bo!"}

    flow = make_flow()
    pause_flow(flow)
    with pytest.raises(FlowPaused, match="The flow 'Greeter' is paused: resume it"):
        start_run(flow, trigger="webhook", event={})
    resume_flow(flow)
    start_run(flow, trigger="webhook", event={})
    assert Run.objects.filter(flow=flow).count() == 1


def test_a_repeated_delivery_id_runs_once(make_flow):
    flow = make_flow()
    first, created = start_run(flow, trigger="webhook", event={}, delivery_id="d-1")
    again, created_again = start_run(flow, trigger="webhook", event={}, delivery_id="d-1")
    assert created and not created_again and again.pk == first.pk
    assert Run.objects.filter(flow=flow).count() == 1


def test_rerun_uses_the_same_event_on_the_same_or_latest_version(make_flow, user):
    from flows.compiler import deploy

    flow = make_flow()
    original, _ = start_run(flow, trigger="webhook", event={"body": {"name": "Ada"}})
    flow.document = document(settings={"greeting": {"value": "Bye"}})
    flow.save()
    deploy(flow, user)
    same = rerun(original, latest=False)
    latest = rerun(original, latest=True)
    same.refresh_from_db()
    latest.refresh_from_db()
    assert same.rerun_of == original and same.version.number == 1
    assert same.output == {"text": "Hello, Ada!"}
    assert latest.version.number == 2 and latest.output == {"text": "Bye, Ada!"}


def test_runs_over_the_flows_concurrency_wait_and_start_when_a_slot_frees(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"  # only queue: this test drives the executor by hand
    flow = make_flow(max_concurrency=1)
    first, _ = start_run(flow, trigger="webhook", event={"body": {"name": "A"}})
    second, _ = start_run(flow, trigger="webhook", event={"body": {"name": "B"}})
    claimed, outcome = claim(first.pk, "token-1")
    assert outcome == "claimed"
    assert execute_run(second.pk, "token-2", manage_connections=False) == "waiting"
    second.refresh_from_db()
    assert second.status == Run.Status.QUEUED and second.claim == "waiting"

    settings.FLOWS_EXECUTOR = "inline"
    from flows.engine.executor import RunExecution

    RunExecution(claimed, "token-1").execute()  # finishing frees the slot: the second starts
    second.refresh_from_db()
    assert second.status == Run.Status.SUCCEEDED and second.output == {"text": "Hello, B!"}


def test_a_redelivered_run_resumes_then_fails_once_attempts_run_out(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = make_flow()
    run, _ = start_run(flow, trigger="webhook", event={"body": {"name": "A"}})
    claim(run.pk, "t-1")
    StepRun.objects.create(run=run, step_id="only_named", position=0, kind="logic.filter")
    # The same token again: the worker that held the message was lost mid-step.
    assert execute_run(run.pk, "t-1", manage_connections=False) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.attempts == 2
    assert list(run.steps.values_list("step_id", "attempt", "status", "error")) == [
        ("only_named", 1, "failed", WORKER_LOST),
        ("only_named", 2, "succeeded", ""),
        ("greet", 1, "succeeded", ""),
    ]
    assert run.log_lines.first().message == f"attempt 2: resuming after {WORKER_LOST}"

    run2, _ = start_run(flow, trigger="webhook", event={})
    claim(run2.pk, "t-2")
    Run.objects.filter(pk=run2.pk).update(attempts=settings.FLOWS_RUN_MAX_ATTEMPTS)
    assert execute_run(run2.pk, "t-2", manage_connections=False) == "lost"
    assert execute_run(run2.pk, "another", manage_connections=False) == "finished"
    run2.refresh_from_db()
    assert run2.status == Run.Status.FAILED and run2.error == WORKER_LOST


def test_a_duplicate_dispatch_of_a_running_run_does_nothing(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"
    run, _ = start_run(make_flow(), trigger="webhook", event={})
    claim(run.pk, "t-1")
    assert execute_run(run.pk, "t-other", manage_connections=False) == "duplicate"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.attempts == 1


def test_the_sweeper_recovers_runs_whose_process_is_gone(
    make_flow, settings, django_capture_on_commit_callbacks
):
    import socket
    from datetime import timedelta

    from django.utils import timezone

    settings.FLOWS_EXECUTOR = "embedded"
    flow = make_flow()
    dead, _ = start_run(flow, trigger="webhook", event={"body": {"name": "A"}})
    silent, _ = start_run(flow, trigger="webhook", event={})
    claim(dead.pk, "t-1")
    claim(silent.pk, "t-2")
    Run.objects.filter(pk=dead.pk).update(worker=f"{socket.gethostname()}:999999999")
    Run.objects.filter(pk=silent.pk).update(
        worker="elsewhere:1",
        attempts=settings.FLOWS_RUN_MAX_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    settings.FLOWS_EXECUTOR = "inline"
    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep_stale_runs()
    assert counts == {"requeued": 1, "failed": 1, "redispatched": 0}
    dead.refresh_from_db()
    silent.refresh_from_db()
    assert dead.status == Run.Status.SUCCEEDED and dead.attempts == 2
    assert silent.status == Run.Status.FAILED and silent.error == WORKER_LOST
    assert LogLine.objects.filter(run=silent).count() == 0
    assert last_run(flow) == silent


PY_STEP = """
def main(event, ctx):
    ctx.log("counting for " + ctx.settings["greeting"])
    seen = ctx.call("kv.get", {"key": "count"}) or 0
    ctx.call("kv.set", {"key": "count", "value": seen + 1})
    try:
        ctx.call("kv.delete", {"key": "count"})
    except ctx.CapabilityError as exc:
        ctx.warn(str(exc))
    return {"count": seen + 1, "name": ctx.steps["only_named"]["passed"], "run": ctx.run["step"]}
"""


def test_python_steps_get_context_and_only_their_granted_capabilities(make_flow):
    flow = make_flow(
        document(
            steps=[
                {"id": "only_named", "kind": "logic.filter", "config": {"condition": "yes"}},
                {
                    "id": "count",
                    "kind": "code.python",
                    "config": {"source": PY_STEP},
                    "grants": ["kv.get", "kv.set"],
                    "limits": {"timeout_s": 10},
                },
                {
                    "id": "say",
                    "kind": "logic.template",
                    "config": {"template": "count={{ steps.count.count }}"},
                },
            ],
            edges=[],
        )
    )
    for expected in (1, 2):
        run, _ = start_run(flow, trigger="webhook", event={})
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, run.error
        assert run.output == {"text": f"count={expected}"}
    step = run.steps.get(step_id="count")
    assert step.output == {"count": 2, "name": True, "run": "count"}
    assert step.fuel_used > 0 and step.duration_ms > 0
    assert step.input == {
        "grants": ["kv.get", "kv.set"],
        "limits": step.input["limits"],
        "steps": ["only_named"],
    }
    assert step.input["limits"]["timeout_s"] == 10
    assert list(run.log_lines.values_list("seq", "step_id", "level", "message")) == [
        (1, "count", "info", "counting for Hello"),
        (2, "count", "warning", "capability 'kv.delete' not granted"),
    ]


def test_python_errors_fail_the_run_with_the_step_named(make_flow):
    flow = make_flow(
        document(
            steps=[
                {
                    "id": "boom",
                    "kind": "code.python",
                    "config": {"source": "def main(event, ctx):\n    return 1 / 0\n"},
                }
            ],
            edges=[],
        )
    )
    run, _ = start_run(flow, trigger="webhook", event={})
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("step 'boom': ")
    assert "ZeroDivisionError: division by zero" in run.error


def test_python_syntax_errors_are_compile_errors_with_the_line(user):
    from flows.compiler import CompileError, compile_document

    doc = document(
        steps=[
            {
                "id": "bad",
                "kind": "code.python",
                "config": {"source": "def main(event, ctx):\n    return (\n"},
            }
        ],
        edges=[],
    )
    with pytest.raises(CompileError) as caught:
        compile_document(doc, user)
    [error] = caught.value.errors
    assert error.startswith("step 'bad': SyntaxError at line 2")
    assert (error.step, error.field) == ("bad", "source")


def test_a_run_costs_a_fixed_small_number_of_database_statements(make_flow):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    flow = make_flow()
    start_run(flow, trigger="webhook", event={"body": {"name": "Warm"}})
    with CaptureQueriesContext(connection) as queries:
        run, _ = start_run(flow, trigger="webhook", event={"body": {"name": "Ada"}})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    # The test's transaction turns the webhook's INSERT and the claim into savepoints.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == [
        *("SAVEPOINT", "INSERT", "RELEASE"),  # the queued run, with everything known
        # claim: the flow's lock, then the run made running if its flow has a free slot
        *("SAVEPOINT", "SELECT", "UPDATE", "RELEASE"),
        *("INSERT", "INSERT"),  # one row per logic step, once done
        "UPDATE",  # finished, and whether other runs wait for the slot
    ]


def test_a_claimed_run_comes_back_whole_with_the_values_a_query_would_give(make_flow):
    flow = make_flow()
    queued = Run.objects.create(
        flow=flow,
        version=flow.current_version,
        plan=flow.current_version.plan,
        trigger="webhook",
        event={"body": {"name": "Ada"}},
    )
    run, outcome = claim(queued.pk, "token-1")
    assert outcome == "claimed"
    stored = Run.objects.get(pk=queued.pk)
    assert (run.status, run.claim, run.attempts) == ("running", "token-1", 1)
    for name in ("created_at", "started_at", "heartbeat_at"):
        # Aware datetimes on every database, equal to what is stored (SQLite returns text).
        assert getattr(run, name).tzinfo is not None
        assert getattr(run, name) == getattr(stored, name)
    assert run.event == {"body": {"name": "Ada"}} and run.plan == stored.plan
    assert (run.flow_id, run.version_id) == (flow.pk, flow.current_version_id)
    # Another dispatch of the same run finds it running: a duplicate, refused.
    assert claim(queued.pk, "token-2") == (None, "duplicate")
