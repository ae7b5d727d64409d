"""The run page shows an agent step's model turns and tool calls under the step, as stored with
the run and as they are sent live."""

from __future__ import annotations

import pytest

from flows.engine import logs
from flows.engine.runs import start_run
from flows.models import StepRun
from tests.agents.conftest import REPO
from tests.fakes.llm import calls

pytestmark = pytest.mark.django_db


def test_the_run_page_nests_each_model_turn_and_tool_call_under_the_agent_step(
    client, user, agent_flow, llm, github, github_connection
):
    github.add_file(REPO, "README.md", "Install with `make run`.")
    llm.replies += [
        calls(("github_file_read", {"path": "README.md"}), ("github_pulls_list", {})),
        "Run `make run`.",
    ]
    flow = agent_flow(
        {
            "prompt": "How do I install it?",
            "tools": [
                {"capability": "github.file.read", "fixed": {"repo": REPO}},
                {"capability": "github.pulls.list", "fixed": {"repo": REPO}},
            ],
        },
        connections={"github": github_connection},
    )
    run, _ = start_run(flow, trigger="manual", event={})
    client.force_login(user)

    page = client.get(f"/runs/{run.pk}/").content.decode()

    trace = page.split(f'id="run-{run.pk}-trace-agent"')[1].split('<details class="small">')[0]
    assert trace.count('class="trace-entry') == 4
    assert (
        "Model, turn 1</span> asked for 2 tool calls: <code>github_file_read, github_pulls_list"
        in trace
    )
    assert 'Tool <code>github_file_read</code></span> <span class="badge succeeded">ok' in trace
    assert "Install with `make run`." in trace
    assert "Model, turn 2</span> answered" in trace


def test_a_trace_entry_goes_live_to_the_steps_trace_in_the_same_markup(user, agent_flow, llm):
    llm.replies += ["Hello."]
    flow = agent_flow({"prompt": "Hi"})
    run, _ = start_run(flow, trigger="manual", event={})
    step = StepRun.objects.get(run=run, step_id="agent")

    event = logs.trace_event(step, step.trace[0], 1)

    assert event["type"] == "trace" and event["step"] == "agent"
    assert event["entry"]["kind"] == "model" and event["entry"]["tokens"]["total_tokens"] > 0
    assert event["html"].startswith(f'<div hx-swap-oob="beforeend:#run-{run.pk}-trace-agent">')
    assert logs.trace_entry_html(step, step.trace[0], 1) in event["html"]
    assert f'id="trace-{step.pk}-1"' in event["html"]
