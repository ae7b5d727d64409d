"""The flow language, run through the real engine: branches, parallel paths and joins, merges,
loops (with their items overlapping on a fake LLM), error paths, waits that park the run,
webhook responses, sub-flows, error flows and per-key concurrency."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from flows.catalog import CATALOG, Block, Param, register_block
from flows.compiler import CompileError, compile_document, deploy
from flows.document import export_document, upgrade
from flows.engine import executor, start_run
from flows.models import Run, StepRun
from integrations.models import Connection


def doc(steps, edges, trigger="trigger.manual", **extra):
    return {
        "schema": "flowbuilder/flow@2",
        "name": "Language",
        "trigger": {"kind": trigger, "config": {}},
        "settings": extra.pop("settings", {}),
        "connections": extra.pop("connections", {}),
        "steps": steps,
        "edges": edges,
        **extra,
    }


def text(step_id, template, **more):
    return {"id": step_id, "kind": "logic.template", "config": {"template": template}, **more}


def steps_of(run):
    """(scope, step) -> (status, port, output, error) of the run's last row per step."""
    rows = StepRun.objects.filter(run=run).order_by("id")
    return {(r.scope, r.step_id): (r.status, r.port, r.output, r.error) for r in rows}


@pytest.fixture
def breaking_block():
    """A block that fails (not retryable) when its `fail` field is true."""

    def execute(config, ctx):
        if config.get("fail"):
            raise ValueError(f"broken on {config.get('label')}")
        return {"ok": config.get("label")}

    register_block(
        Block(
            kind="test.breakable",
            category="integration",
            title="Breakable",
            description="Fails on demand.",
            params=(
                Param("fail", "boolean", default=False, templated=True),
                Param("label", "string", templated=True),
            ),
            execute=execute,
        )
    )
    yield
    CATALOG.pop("test.breakable")


def llm_connection(user, llm) -> Connection:
    """The user's LLM connection to the fake OpenAI-compatible server."""
    connection = Connection(
        owner=user, service="llm", name="LLM", config={"base_url": llm.base_url, "model": "llama3"}
    )
    connection.set_secrets({})
    connection.save()
    return connection


def run_manual(flow, event):
    run, _ = start_run(flow, trigger="manual", event=event)
    run.refresh_from_db()
    return run


# Branches ---------------------------------------------------------------------------------------
IF_DOC = doc(
    [
        {"id": "check", "kind": "logic.if", "config": {"condition": "{{ event.n > 5 }}"}},
        text("big", "big {{ event.n }}"),
        text("small", "small {{ event.n }}"),
        text("after", "{{ steps.big.text }}{{ steps.small.text }} done"),
    ],
    [
        ["trigger", "out", "check"],
        ["check", "true", "big"],
        ["check", "false", "small"],
        ["big", "out", "after"],
        ["small", "out", "after"],
    ],
)


def test_an_if_takes_one_branch_skips_the_other_with_the_reason_and_the_join_still_runs(
    make_flow,
):
    flow = make_flow(IF_DOC)
    run = run_manual(flow, {"n": 9})
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "big 9 done"}
    rows = steps_of(run)
    assert rows[("", "check")][:2] == ("succeeded", "true")
    assert rows[("", "big")][0] == "succeeded"
    assert rows[("", "small")][0] == "skipped"
    assert rows[("", "small")][3] == "path not taken: 'check' went 'true', not 'false'"
    assert rows[("", "after")][0] == "succeeded"

    run = run_manual(flow, {"n": 2})
    assert run.output == {"text": "small 2 done"}
    assert steps_of(run)[("", "big")][0] == "skipped"


def test_a_switch_matches_equals_contains_regex_and_glob_in_order_then_default(make_flow):
    cases = [
        {"port": "review", "op": "equals", "match": "/review"},
        {"port": "summary", "op": "contains", "match": "/summary"},
        {"port": "issue", "op": "regex", "match": r"#\d+"},
        {"port": "docs", "op": "glob", "match": "docs/*.md"},
    ]
    ports = ["review", "summary", "issue", "docs", "default"]
    flow = make_flow(
        doc(
            [
                {
                    "id": "route",
                    "kind": "logic.switch",
                    "config": {"value": "{{ event.t }}", "cases": cases},
                }
            ]
            + [text(p, p) for p in ports],
            [["trigger", "out", "route"]] + [["route", p, p] for p in ports],
        )
    )
    for value, expected in [
        ("/review", "review"),
        ("please /summary now", "summary"),
        ("fixes #12", "issue"),
        ("docs/intro.md", "docs"),
        ("hello", "default"),
    ]:
        run = run_manual(flow, {"t": value})
        rows = steps_of(run)
        assert rows[("", "route")][1] == expected, value
        ran = [p for p in ports if rows[("", p)][0] == "succeeded"]
        assert ran == [expected]


# Parallel paths and merges ----------------------------------------------------------------------
def test_parallel_paths_join_and_a_merge_collects_the_outputs_by_step(make_flow):
    flow = make_flow(
        doc(
            [
                text("left", "L{{ event.x }}"),
                text("right", "R{{ event.x }}"),
                {"id": "both", "kind": "logic.merge", "config": {}},
                text("final", "{{ steps.both.left.text }}+{{ steps.both.right.text }}"),
            ],
            [
                ["trigger", "out", "left"],
                ["trigger", "out", "right"],
                ["left", "out", "both"],
                ["right", "out", "both"],
                ["both", "out", "final"],
            ],
        )
    )
    run = run_manual(flow, {"x": 1})
    assert run.status == Run.Status.SUCCEEDED
    assert steps_of(run)[("", "both")][2] == {"left": {"text": "L1"}, "right": {"text": "R1"}}
    assert run.output == {"text": "L1+R1"}


# Error paths ------------------------------------------------------------------------------------
def test_a_failing_step_with_an_error_path_goes_on_along_it(make_flow, breaking_block):
    flow = make_flow(
        doc(
            [
                {"id": "call", "kind": "test.breakable", "config": {"fail": True, "label": "x"}},
                text("ok", "fine"),
                text("report", "failed: {{ steps.call.error }} at {{ steps.call.step }}"),
            ],
            [["trigger", "out", "call"], ["call", "out", "ok"], ["call", "error", "report"]],
        )
    )
    run = run_manual(flow, {})
    assert run.status == Run.Status.SUCCEEDED_WITH_ERRORS
    rows = steps_of(run)
    assert rows[("", "call")][:2] == ("failed", "error")
    assert rows[("", "ok")][0] == "skipped"
    assert run.output == {"text": "failed: ValueError: broken on x at call"}


def test_without_an_error_path_a_failure_fails_the_run_and_nothing_after_it_starts(
    make_flow, breaking_block
):
    flow = make_flow(
        doc(
            [{"id": "call", "kind": "test.breakable", "config": {"fail": True}}, text("ok", "x")],
            [["trigger", "out", "call"], ["call", "out", "ok"]],
        )
    )
    run = run_manual(flow, {})
    assert run.status == Run.Status.FAILED
    assert run.error == "step 'call': ValueError: broken on None"
    assert ("", "ok") not in steps_of(run)


def test_a_failed_run_starts_the_flow_named_as_its_error_flow(make_flow, user, breaking_block):
    handler = make_flow(
        doc(
            [text("note", "run {{ event.run.id }} of {{ event.flow.name }}")],
            [["trigger", "out", "note"]],
        )
    )
    flow = make_flow(
        doc(
            [{"id": "call", "kind": "test.breakable", "config": {"fail": True}}],
            [["trigger", "out", "call"]],
            on_error={"flow": handler.pk},
        )
    )
    run = run_manual(flow, {})
    assert run.status == Run.Status.FAILED
    child = Run.objects.get(flow=handler)
    assert child.parent_run == run and child.trigger == "error"
    assert child.output == {"text": f"run {run.pk} of Language"}


# Loops ------------------------------------------------------------------------------------------
LOOP_DOC = doc(
    [
        {
            "id": "each",
            "kind": "logic.foreach",
            "config": {"items": "{{ event.files }}", "concurrency": 1},
        },
        text("shout", "{{ index }}:{{ item | upper }}", parent="each"),
        text("total", "{{ steps.each | map(attribute='text') | join(',') }}"),
    ],
    [["trigger", "out", "each"], ["each", "body", "shout"], ["each", "out", "total"]],
)


def test_a_loop_runs_its_body_per_item_and_returns_the_outputs_in_item_order(make_flow):
    flow = make_flow(LOOP_DOC)
    run = run_manual(flow, {"files": ["a.py", "b.py", "c.py"]})
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "0:A.PY,1:B.PY,2:C.PY"}
    rows = steps_of(run)
    assert rows[("each[1]", "shout")][2] == {"text": "1:B.PY"}
    assert rows[("", "each")][2] == [{"text": "0:A.PY"}, {"text": "1:B.PY"}, {"text": "2:C.PY"}]


def test_a_failing_item_fails_the_loop_unless_it_continues_on_error(make_flow, breaking_block):
    body = {
        "id": "try",
        "kind": "test.breakable",
        "parent": "each",
        "config": {"fail": "{{ item == 'bad' }}", "label": "{{ item }}"},
    }
    loop = {"id": "each", "kind": "logic.foreach", "config": {"items": "{{ event.items }}"}}
    edges = [["trigger", "out", "each"], ["each", "body", "try"]]
    flow = make_flow(doc([loop, body], edges))
    run = run_manual(flow, {"items": ["ok", "bad", "never"]})
    assert run.status == Run.Status.FAILED
    assert run.error == "step 'each': item 1: step 'try': ValueError: broken on bad"
    assert ("each[2]", "try") not in steps_of(run)  # nothing starts after the failure

    loop["config"]["continue_on_error"] = True
    flow = make_flow(doc([loop, body], edges))
    run = run_manual(flow, {"items": ["ok", "bad", "fine"]})
    assert run.status == Run.Status.SUCCEEDED_WITH_ERRORS
    assert run.output == [
        {"ok": "ok"},
        {"error": "step 'try': ValueError: broken on bad", "index": 1},
        {"ok": "fine"},
    ]


def test_loop_items_overlap_on_a_slow_llm_up_to_the_loops_concurrency(make_flow, user, llm):
    connection = llm_connection(user, llm)
    llm.latency = 0.2
    flow = make_flow(
        doc(
            [
                {
                    "id": "each",
                    "kind": "logic.foreach",
                    "config": {
                        "items": "{{ event.files }}",
                        "concurrency": "{{ settings.at_once }}",
                    },
                },
                {
                    "id": "review",
                    "kind": "llm.chat",
                    "parent": "each",
                    "config": {"prompt": "review {{ item }}"},
                },
            ],
            [["trigger", "out", "each"], ["each", "body", "review"]],
            connections={"llm": {"service": "llm", "connection": connection.pk}},
            settings={"at_once": 5},
        )
    )
    files = [f"f{i}.py" for i in range(20)]
    run = run_manual(flow, {"files": files})
    assert run.status == Run.Status.SUCCEEDED
    assert [o["content"] for o in run.output] == [f"echo: review {f}" for f in files]
    assert llm.max_in_flight == 5  # five items at once, never more


# Waits ------------------------------------------------------------------------------------------
def test_a_wait_parks_the_run_and_a_sweep_resumes_it_after_a_restart(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues: the test plays the worker
    flow = make_flow(
        doc(
            [
                text("before", "b"),
                {"id": "pause", "kind": "logic.wait", "config": {"seconds": 600}},
                text("after", "a {{ steps.pause.waited_until[:4] }}"),
            ],
            [["trigger", "out", "before"], ["before", "out", "pause"], ["pause", "out", "after"]],
        )
    )
    run, _ = start_run(flow, trigger="manual", event={})
    executor.execute_run(run.pk, "first", manage_connections=False)
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert abs((run.resume_at - timezone.now()).total_seconds() - 600) < 5
    assert steps_of(run)[("", "pause")][0] == "waiting"

    # Early: a sweep leaves it parked. Once due (the timer was lost with its process), the
    # sweep resumes it without running the finished step again.
    settings.FLOWS_EXECUTOR = "inline"
    executor.sweep_stale_runs()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    executor.sweep_stale_runs(now=run.resume_at + timedelta(seconds=30))
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING  # resume_at is still in the (real) future
    Run.objects.filter(pk=run.pk).update(resume_at=timezone.now() - timedelta(seconds=60))
    StepRun.objects.filter(run=run, step_id="pause").update(
        resume_at=timezone.now() - timedelta(seconds=60)
    )
    executor.sweep_stale_runs()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.attempts == 1
    assert StepRun.objects.filter(run=run, step_id="before").count() == 1
    assert steps_of(run)[("", "pause")][0] == "succeeded"
    assert run.output["text"].startswith("a 20")


def test_a_long_retry_backoff_parks_the_run_instead_of_sleeping(make_flow, settings, flaky_block):
    settings.FLOWS_PARK_MIN_S = 0.05
    flow = make_flow(
        doc(
            [
                {
                    "id": "flaky",
                    "kind": "test.flaky",
                    "config": {"succeed_on": 2},
                    "retry": {"max_attempts": 3, "backoff_s": 0.1},
                }
            ],
            [["trigger", "out", "flaky"]],
        )
    )
    run = run_manual(flow, {})  # inline: the parked run is resumed by the queue's timer
    assert run.status == Run.Status.SUCCEEDED
    assert run.resume_at is not None
    attempts = list(StepRun.objects.filter(run=run).values_list("attempt", "status"))
    assert attempts == [(1, "failed"), (2, "succeeded")]


# Webhook responses ------------------------------------------------------------------------------
RESPOND_DOC = doc(
    [
        text("greet", "Hello {{ event.body.name }}"),
        {
            "id": "answer",
            "kind": "http.respond",
            "config": {
                "status": 201,
                "body": {"text": "{{ steps.greet.text }}"},
                "headers": {"Cache-Control": "no-store"},
            },
        },
        text("later", "still running"),
    ],
    [["trigger", "out", "greet"], ["greet", "out", "answer"], ["answer", "out", "later"]],
    trigger="trigger.webhook",
)


@pytest.mark.django_db(transaction=True)
def test_a_webhook_caller_gets_the_response_a_step_sets_without_asking_to_wait(make_flow):
    flow = make_flow(RESPOND_DOC)
    response = Client().post(
        f"/hooks/{flow.webhook_token}/",
        json.dumps({"name": "Ada"}),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json() == {"text": "Hello Ada"}
    assert response["Cache-Control"] == "no-store"
    run = Run.objects.get(flow=flow)
    assert run.status == Run.Status.SUCCEEDED and run.output == {"text": "still running"}


@pytest.mark.django_db(transaction=True)
def test_a_flow_may_not_set_cookies_and_a_failed_run_answers_500(make_flow):
    document = json.loads(json.dumps(RESPOND_DOC))
    document["steps"][1]["config"]["headers"] = {"Set-Cookie": "session=stolen"}
    flow = make_flow(document)
    response = Client().post(
        f"/hooks/{flow.webhook_token}/",
        json.dumps({"name": "Ada"}),
        content_type="application/json",
    )
    assert response.status_code == 500
    assert "Set-Cookie" not in response
    body = response.json()
    assert body["status"] == "failed"
    assert "may not set the response header 'Set-Cookie'" in body["error"]


# Sub-flows --------------------------------------------------------------------------------------
def test_a_flow_calls_another_and_waits_for_its_output_linked_both_ways(make_flow):
    child = make_flow(doc([text("double", "{{ event.n * 2 }}")], [["trigger", "out", "double"]]))
    parent = make_flow(
        doc(
            [
                {
                    "id": "call",
                    "kind": "flow.call",
                    "config": {"flow": child.pk, "input": {"n": "{{ event.n }}"}},
                },
                text("show", "got {{ steps.call.text }}"),
            ],
            [["trigger", "out", "call"], ["call", "out", "show"]],
        )
    )
    run = run_manual(parent, {"n": 21})
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "got 42"}
    child_run = Run.objects.get(flow=child)
    assert child_run.parent_run == run and child_run.parent_step == "call"
    assert child_run.depth == 1 and list(run.children.all()) == [child_run]


def test_a_flow_calling_itself_stops_at_the_depth_cap(make_flow, settings, user):
    settings.FLOWS_SUBFLOW_MAX_DEPTH = 3
    flow = make_flow(doc([text("x", "x")], [["trigger", "out", "x"]]))
    flow.document = doc(
        [{"id": "again", "kind": "flow.call", "config": {"flow": flow.pk}}],
        [["trigger", "out", "again"]],
    )
    flow.save()
    deploy(flow, user)
    run = run_manual(flow, {})
    assert run.status == Run.Status.FAILED
    deepest = Run.objects.filter(flow=flow).order_by("-depth").first()
    assert deepest.depth == 3
    assert deepest.error == (
        "step 'again': flows call each other more than 3 deep: refusing to go on"
    )


# Per-key concurrency ----------------------------------------------------------------------------
def keyed(make_flow, mode):
    return make_flow(
        doc(
            [text("work", "pr {{ event.pr }}")],
            [["trigger", "out", "work"]],
            concurrency={"key": "pr-{{ event.pr }}", "mode": mode, "limit": 1},
        )
    )


def test_cancel_in_progress_cancels_the_older_run_of_the_same_key(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues
    flow = keyed(make_flow, "cancel_in_progress")
    first, _ = start_run(flow, trigger="manual", event={"pr": 7})
    other, _ = start_run(flow, trigger="manual", event={"pr": 8})
    second, _ = start_run(flow, trigger="manual", event={"pr": 7})
    first.refresh_from_db()
    other.refresh_from_db()
    assert first.status == Run.Status.CANCELLED and first.cancelled_by == second
    assert "replaced it" in first.error
    assert other.status == Run.Status.QUEUED
    assert executor.execute_run(first.pk, "t1", manage_connections=False) == "finished"
    executor.execute_run(second.pk, "t2", manage_connections=False)
    second.refresh_from_db()
    assert second.status == Run.Status.SUCCEEDED and second.concurrency_key == "pr-7"


def test_drop_new_keeps_the_run_in_progress_and_records_the_dropped_one(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = keyed(make_flow, "drop_new")
    first, _ = start_run(flow, trigger="manual", event={"pr": 7})
    second, _ = start_run(flow, trigger="manual", event={"pr": 7})
    assert second.status == Run.Status.CANCELLED and second.cancelled_by == first
    assert second.error == (
        f"dropped: run #{first.pk} with the same concurrency key 'pr-7' is in progress"
    )


def test_queue_mode_runs_one_run_per_key_at_a_time(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = keyed(make_flow, "queue")
    first, _ = start_run(flow, trigger="manual", event={"pr": 7})
    second, _ = start_run(flow, trigger="manual", event={"pr": 7})
    other, _ = start_run(flow, trigger="manual", event={"pr": 8})
    assert executor.claim(first.pk, "a")[1] == "claimed"
    assert executor.claim(second.pk, "b")[1] == "waiting"
    assert executor.claim(other.pk, "c")[1] == "claimed"


# Recovery ---------------------------------------------------------------------------------------
def test_a_lost_worker_in_the_middle_of_a_loop_resumes_without_running_finished_items_again(
    make_flow,
):
    calls: list[str] = []

    class WorkerLost(BaseException):
        pass

    def execute(config, ctx):
        calls.append(config["label"])
        if config["label"] == "c" and calls.count("c") == 1:
            raise WorkerLost  # the process dies here, mid-loop
        return {"done": config["label"]}

    register_block(
        Block(
            kind="test.counted",
            category="integration",
            title="Counted",
            description="Counts its calls.",
            params=(Param("label", "string", templated=True),),
            execute=execute,
        )
    )
    try:
        flow = make_flow(
            doc(
                [
                    {
                        "id": "each",
                        "kind": "logic.foreach",
                        "config": {"items": "{{ event.items }}"},
                    },
                    {
                        "id": "work",
                        "kind": "test.counted",
                        "parent": "each",
                        "config": {"label": "{{ item }}"},
                    },
                    text("left", "L"),
                    text("right", "R"),
                    {"id": "join", "kind": "logic.merge", "config": {}},
                ],
                [
                    ["trigger", "out", "each"],
                    ["each", "body", "work"],
                    ["trigger", "out", "left"],
                    ["each", "out", "join"],
                    ["left", "out", "right"],
                    ["right", "out", "join"],
                ],
            ),
        )
        run, _ = Run.objects.get_or_create(
            flow=flow,
            plan=flow.current_version.plan,
            trigger="manual",
            event={"items": ["a", "b", "c", "d"]},
        )
        with pytest.raises(WorkerLost):
            executor.execute_run(run.pk, "lost", manage_connections=False)
        # The message comes back with the same token: the run resumes.
        executor.execute_run(run.pk, "lost", manage_connections=False)
    finally:
        CATALOG.pop("test.counted")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.attempts == 2
    assert calls == ["a", "b", "c", "c", "d"]  # only the interrupted item ran twice
    joined = steps_of(run)[("", "join")][2]
    assert joined["each"] == [{"done": x} for x in "abcd"] and joined["right"] == {"text": "R"}


# Compiler -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("steps", "edges", "trigger", "message"),
    [
        (
            [text("a", "a")],
            [["trigger", "out", "a"], ["a", "yes", "a"]],
            "trigger.manual",
            "step 'a': edge 'a' → 'a' leaves from port 'yes', which this step does not have "
            "(its ports: out, error)",
        ),
        (
            [
                {"id": "each", "kind": "logic.foreach", "config": {"items": "{{ event.x }}"}},
                text("inner", "i", parent="each"),
                text("outer", "o"),
            ],
            [["trigger", "out", "each"], ["each", "body", "inner"], ["inner", "out", "outer"]],
            "trigger.manual",
            "step 'outer': edge 'inner' → 'outer' crosses the boundary of loop 'each': a loop's "
            "body connects only inside itself, and the loop's 'out' port carries its results on",
        ),
        (
            [{"id": "each", "kind": "logic.foreach", "config": {"items": "{{ event.x }}"}}],
            [["trigger", "out", "each"]],
            "trigger.manual",
            "step 'each': this loop has no body: put steps inside it (their \"parent\" names it)",
        ),
        (
            [{"id": "answer", "kind": "http.respond", "config": {"body": "x"}}],
            [["trigger", "out", "answer"]],
            "trigger.manual",
            "step 'answer': only a flow triggered by a webhook has a caller to respond to",
        ),
        (
            [text("left", "L"), text("right", "{{ steps.left.text }}")],
            [["trigger", "out", "left"], ["trigger", "out", "right"]],
            "trigger.manual",
            "step 'right': field 'template' refers to step 'left', which does not run before "
            "this step (connect it to this step's inputs)",
        ),
    ],
)
def test_the_compiler_names_the_step_of_each_graph_problem(user, steps, edges, trigger, message):
    with pytest.raises(CompileError) as caught:
        compile_document(doc(steps, edges, trigger=trigger), user)
    assert message in caught.value.errors


def test_a_v1_document_upgrades_losslessly_and_exports_as_v2():
    v1 = {
        "schema": "flowbuilder/flow@1",
        "name": "Old",
        "trigger": {"kind": "trigger.manual", "config": {}},
        "steps": [text("a", "a"), text("b", "b")],
    }
    upgraded = upgrade(v1)
    assert upgraded["schema"] == "flowbuilder/flow@2"
    assert upgraded["edges"] == [["trigger", "out", "a"], ["a", "out", "b"]]
    assert upgrade({**v1, "edges": [["trigger", "b"], ["b", "a"]]})["edges"] == [
        ["trigger", "out", "b"],
        ["b", "out", "a"],
    ]
    assert export_document(v1)["schema"] == "flowbuilder/flow@2"
    assert v1["schema"] == "flowbuilder/flow@1"  # the original is untouched


def test_every_template_and_fixture_document_upgrades_and_compiles_its_graph(user):
    from pathlib import Path

    from flows import graph

    root = Path(__file__).resolve().parents[2]
    files = sorted(root.glob("flow_templates/*/flow.json"))
    assert len(files) >= 5
    for path in files:
        document = upgrade(json.loads(path.read_text()))
        shape = graph.analyse(document)
        assert shape.issues == [], path
        assert len(shape.order) == len(document["steps"]), path


def test_a_rate_limit_with_a_long_retry_after_parks_the_run_until_then(
    make_flow, user, llm, settings
):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues: the test plays the worker
    connection = llm_connection(user, llm)
    llm.rate_limit_next(retry_after=120)
    flow = make_flow(
        doc(
            [
                {
                    "id": "ask",
                    "kind": "llm.chat",
                    "config": {"prompt": "hello"},
                    "retry": {"max_attempts": 2, "backoff_s": 1},
                }
            ],
            [["trigger", "out", "ask"]],
            connections={"llm": {"service": "llm", "connection": connection.pk}},
        )
    )
    run, _ = start_run(flow, trigger="manual", event={})
    executor.execute_run(run.pk, "first", manage_connections=False)
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert 110 < (run.resume_at - timezone.now()).total_seconds() <= 120
    assert len(llm.chats) == 1  # no worker sat out the two minutes
    messages = list(run.log_lines.values_list("message", flat=True))
    assert any("the run waits without holding a worker" in m for m in messages)

    settings.FLOWS_EXECUTOR = "inline"
    Run.objects.filter(pk=run.pk).update(resume_at=timezone.now() - timedelta(seconds=60))
    executor.sweep_stale_runs()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.output["content"] == "echo: hello"
    assert list(StepRun.objects.filter(run=run).values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "succeeded"),
    ]


def test_a_rerun_of_a_branching_loop_takes_the_same_path_again(make_flow):
    from flows.engine import rerun

    flow = make_flow(LOOP_DOC)
    first = run_manual(flow, {"files": ["x", "y"]})
    again = rerun(first)
    again.refresh_from_db()
    assert again.rerun_of == first and again.status == Run.Status.SUCCEEDED
    assert again.output == first.output == {"text": "0:X,1:Y"}
    assert set(steps_of(again)) == set(steps_of(first))


def test_a_filter_inside_a_loop_ends_only_its_item(make_flow):
    flow = make_flow(
        doc(
            [
                {"id": "each", "kind": "logic.foreach", "config": {"items": "{{ event.n }}"}},
                {
                    "id": "odd",
                    "kind": "logic.filter",
                    "parent": "each",
                    "config": {"condition": "{{ item % 2 }}", "reason": "even"},
                },
                text("keep", "{{ item }}", parent="each"),
            ],
            [["trigger", "out", "each"], ["each", "body", "odd"], ["odd", "out", "keep"]],
        )
    )
    run = run_manual(flow, {"n": [1, 2, 3]})
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == [{"text": "1"}, {"passed": False}, {"text": "3"}]


def test_a_loop_whose_items_failed_still_marks_the_run_after_it_parks(
    make_flow, settings, breaking_block, user
):
    settings.FLOWS_PARK_MIN_S = 0.05
    flow = make_flow(
        doc(
            [
                {
                    "id": "each",
                    "kind": "logic.foreach",
                    "config": {"items": "{{ event.items }}", "continue_on_error": True},
                },
                {
                    "id": "try",
                    "kind": "test.breakable",
                    "parent": "each",
                    "config": {"fail": "{{ item == 'bad' }}", "label": "{{ item }}"},
                },
                {"id": "pause", "kind": "logic.wait", "config": {"seconds": 0.2}},
            ],
            [["trigger", "out", "each"], ["each", "body", "try"], ["each", "out", "pause"]],
        )
    )
    run = run_manual(flow, {"items": ["a", "bad", "c"]})  # parks, then resumes inline
    assert run.resume_at is not None
    assert run.status == Run.Status.SUCCEEDED_WITH_ERRORS
    assert steps_of(run)[("", "each")][3] == "1 of 3 items failed; the loop went on"

    client = Client()
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "3 items: 2 succeeded, 1 failed" in page
    assert "Succeeded with errors" in page


def test_the_run_pages_link_a_parent_run_and_the_runs_it_started(make_flow, user):
    child = make_flow(doc([text("echo", "{{ event.x }}")], [["trigger", "out", "echo"]]))
    parent = make_flow(
        doc(
            [{"id": "call", "kind": "flow.call", "config": {"flow": child.pk, "input": {"x": 1}}}],
            [["trigger", "out", "call"]],
        )
    )
    run = run_manual(parent, {})
    child_run = Run.objects.get(flow=child)
    client = Client()
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'Runs it started: <a href="/runs/{child_run.pk}/">run #{child_run.pk}</a>' in page
    child_page = client.get(f"/runs/{child_run.pk}/").content.decode()
    assert f'started by <a href="/runs/{run.pk}/">run #{run.pk}</a> (its step call)' in child_page


def test_a_flow_called_without_waiting_runs_on_its_own(make_flow, settings):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues: the child waits for a worker
    child = make_flow(doc([text("echo", "{{ event.x }}")], [["trigger", "out", "echo"]]))
    parent = make_flow(
        doc(
            [
                {
                    "id": "call",
                    "kind": "flow.call",
                    "config": {"flow": child.pk, "input": {"x": 5}, "wait": False},
                }
            ],
            [["trigger", "out", "call"]],
        )
    )
    run, _ = start_run(parent, trigger="manual", event={})
    executor.execute_run(run.pk, "parent", manage_connections=False)
    run.refresh_from_db()
    child_run = Run.objects.get(flow=child)
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"run_id": child_run.pk, "flow": child.pk}
    assert child_run.status == Run.Status.QUEUED and child_run.parent_run == run
    executor.execute_run(child_run.pk, "child", manage_connections=False)
    child_run.refresh_from_db()
    assert child_run.output == {"text": "5"}


def test_a_version_deployed_before_the_flow_language_runs_as_it_was(make_flow, user):
    from flows.models import FlowVersion

    flow = make_flow(doc([text("a", "a")], [["trigger", "out", "a"]]))
    old_plan = {  # a plan of the first schema: steps in order, no edges, a filter that ends runs
        "schema": "flowbuilder/plan@1",
        "trigger": {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "time_limit_s": 60,
        "steps": [
            {
                "id": "gate",
                "kind": "logic.filter",
                "category": "logic",
                "position": 0,
                "config": {"condition": "{{ event.go }}", "reason": "not now"},
                "templated": ["condition", "reason"],
                "grants": [],
                "bindings": {},
                "retry": {"max_attempts": 1, "backoff_s": 0},
            },
            {
                "id": "say",
                "kind": "logic.template",
                "category": "logic",
                "position": 1,
                "config": {"template": "went"},
                "templated": ["template"],
                "grants": [],
                "bindings": {},
                "retry": {"max_attempts": 1, "backoff_s": 0},
            },
        ],
    }
    version = FlowVersion.objects.create(
        flow=flow, number=9, document={}, plan=old_plan, content_hash="old"
    )
    run, _ = start_run(flow, trigger="manual", event={"go": True}, version=version)
    assert Run.objects.get(pk=run.pk).output == {"text": "went"}
    run, _ = start_run(flow, trigger="manual", event={"go": False}, version=version)
    run.refresh_from_db()
    assert (run.status, run.error) == (Run.Status.SKIPPED, "step 'gate': not now")


def test_the_run_page_shows_when_parallel_steps_started(make_flow, user, llm):
    connection = llm_connection(user, llm)
    llm.latency = 0.3
    ask = {"kind": "llm.chat", "config": {"prompt": "hi"}}
    flow = make_flow(
        doc(
            [{"id": "left", **ask}, {"id": "right", **ask}],
            [["trigger", "out", "left"], ["trigger", "out", "right"]],
            connections={"llm": {"service": "llm", "connection": connection.pk}},
        )
    )
    run = run_manual(flow, {})
    rows = {r.step_id: r for r in StepRun.objects.filter(run=run)}
    # Both started before either finished: they overlapped.
    assert rows["left"].started_at < rows["right"].finished_at
    assert rows["right"].started_at < rows["left"].finished_at
    client = Client()
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert page.count('<span title="Started this long after the run started">started +') == 2


def test_a_test_run_uses_pinned_outputs_and_ports_instead_of_running_the_steps(
    make_flow, breaking_block
):
    document = doc(
        [
            {"id": "fetch", "kind": "test.breakable", "config": {"fail": True}},
            {"id": "check", "kind": "logic.if", "config": {"condition": "true"}},
            text("yes", "yes {{ steps.fetch.ok }}"),
            text("no", "no {{ steps.fetch.ok }}"),
        ],
        [
            ["trigger", "out", "fetch"],
            ["fetch", "out", "check"],
            ["check", "true", "yes"],
            ["check", "false", "no"],
        ],
        pinned={
            "fetch": {"output": {"ok": "pinned"}, "port": "out"},
            "check": {"output": {"result": False}, "port": "false"},
        },
    )
    flow = make_flow(document, deployed=False)
    run, _ = start_run(flow, trigger="manual", event={}, draft=True)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "no pinned"}
    assert steps_of(run)[("", "fetch")][:2] == ("succeeded", "out")
    assert steps_of(run)[("", "yes")][0] == "skipped"
    # Deployed versions never use pins; exports leave them out.
    deploy(flow, flow.owner)
    flow.refresh_from_db()
    deployed = run_manual(flow, {})
    assert deployed.status == Run.Status.FAILED
    assert "pinned" not in export_document(document)


def test_a_hanging_model_cannot_hold_a_step_past_its_time_limit(make_flow, user, llm):
    connection = llm_connection(user, llm)
    llm.latency = 6  # longer than the step may take, shorter than the LLM's own timeout
    source = (
        "def main(event, ctx):\n"
        "    try:\n"
        "        ctx.call('llm.chat', {'prompt': 'hi'})\n"
        "    except ctx.CapabilityError as exc:\n"
        "        return {'kept': 'partial results', 'why': str(exc)}\n"
    )
    flow = make_flow(
        doc(
            [
                {
                    "id": "review",
                    "kind": "code.python",
                    "config": {"source": source},
                    "grants": ["llm.chat"],
                    "limits": {"timeout_s": 2},
                }
            ],
            [["trigger", "out", "review"]],
            connections={"llm": {"service": "llm", "connection": connection.pk}},
        )
    )
    run = run_manual(flow, {})
    # The call gave up with the step's time left, so the step could still say what it had.
    assert run.status == Run.Status.SUCCEEDED
    assert run.output["kept"] == "partial results"
    assert "did not answer within the" in run.output["why"]
    assert "the step could give it of its time limit" in run.output["why"]
    assert llm.max_in_flight == 1  # asked once, not retried past the limit
