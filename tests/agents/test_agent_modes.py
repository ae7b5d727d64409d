"""The fake model's scripted conversations on the executor a deployment really uses: a Celery
worker process in distributed mode (PostgreSQL + Redis), the embedded executor's threads
otherwise. Each scenario of tool calling the fake server speaks ends as a user would see it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.engine.runs import start_run
from flows.models import Run, StepRun
from tests.agents.conftest import REPO
from tests.engine import live
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import FakeLLM, calls

pytestmark = pytest.mark.django_db(transaction=True)

READ_FILE = {"capability": "github.file.read", "fixed": {"repo": REPO}}


@pytest.fixture(scope="module")
def shared_github() -> Iterator[FakeGitHub]:
    # One fake for the whole module: the worker process learns its URL once, when it starts.
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture(scope="module")
def shared_llm() -> Iterator[FakeLLM]:
    with FakeLLM(models=["llama3.1"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def executor(django_db_setup, django_db_blocker, shared_github) -> Iterator[str]:
    with live.module_executor("agents", shared_github.url) as kind:
        yield kind


@pytest.fixture
def github(settings, shared_github) -> FakeGitHub:
    settings.FLOWS_GITHUB_API_URL = shared_github.url
    shared_github.requests.clear()
    shared_github.add_repo(REPO)
    shared_github.add_file(REPO, "README.md", "Install with `make run`.")
    shared_github.add_file(REPO, "docs/deploy.md", "Deploy with uvicorn and celery.")
    return shared_github


@pytest.fixture
def llm(shared_llm) -> FakeLLM:
    shared_llm.requests.clear()
    shared_llm.replies.clear()
    return shared_llm


@pytest.fixture
def on_executor(executor, settings, agent_flow, llm, github, github_connection):
    """Start a run of an agent flow on the deployment's executor; its run and agent step once
    finished."""
    settings.FLOWS_EXECUTOR = executor

    def go(config: dict) -> tuple[Run, StepRun]:
        flow = agent_flow(config, connections={"github": github_connection})
        run, _ = start_run(flow, trigger="manual", event={})
        run = live.wait_until(
            lambda: Run.objects.filter(pk=run.pk, finished_at__isnull=False).first(),
            60,
            f"run {run.pk} to finish on the {executor} executor",
        )
        return run, StepRun.objects.filter(run=run, step_id="agent").order_by("-id").first()

    return go


def tools_called(step: StepRun) -> list[tuple[str, str]]:
    return [(e["name"], e["status"]) for e in step.trace if e["kind"] == "tool"]


def test_a_scripted_conversation_of_several_turns(on_executor, llm):
    llm.replies += [
        calls(("github_file_read", {"path": "README.md"})),
        calls(("github_file_read", {"path": "docs/deploy.md"})),
        "Install with `make run`; deploy with uvicorn and celery.",
    ]

    run, step = on_executor({"prompt": "How do I install and deploy it?", "tools": [READ_FILE]})

    assert run.status == "succeeded", run.error
    assert run.output["answer"] == "Install with `make run`; deploy with uvicorn and celery."
    assert tools_called(step) == [("github_file_read", "ok"), ("github_file_read", "ok")]
    assert [len(chat["messages"]) for chat in llm.chats] == [1, 3, 5]


def test_parallel_tool_calls(on_executor, llm, github):
    github.latency = 0.3
    llm.replies += [
        calls(
            ("github_file_read", {"path": "README.md"}),
            ("github_file_read", {"path": "docs/deploy.md"}),
        ),
        "Both read.",
    ]
    try:
        run, step = on_executor({"prompt": "Read both.", "tools": [READ_FILE]})
    finally:
        github.latency = 0.0

    assert run.status == "succeeded", run.error
    assert github.max_in_flight >= 2
    assert tools_called(step) == [("github_file_read", "ok")] * 2


def test_a_call_to_a_tool_that_was_not_offered(on_executor, llm, github):
    llm.replies += [
        calls(("github_issue_create", {"repo": REPO, "title": "spam"})),
        "I may not open issues.",
    ]

    run, step = on_executor({"prompt": "Open an issue.", "tools": [READ_FILE]})

    assert run.status == "succeeded", run.error
    assert tools_called(step) == [("github_issue_create", "refused")]
    assert github.requests_to("POST") == []


def test_malformed_arguments(on_executor, llm):
    llm.replies += [
        calls(("github_file_read", "{'path': 'README.md'}")),
        calls(("github_file_read", {"path": "README.md"})),
        "Fixed my call.",
    ]

    run, step = on_executor({"prompt": "Read the README.", "tools": [READ_FILE]})

    assert run.status == "succeeded", run.error
    assert tools_called(step) == [("github_file_read", "error"), ("github_file_read", "ok")]


def test_a_loop_that_never_ends(on_executor, llm):
    llm.replies += [lambda body: calls(("github_file_read", {"path": "README.md"}))] * 20

    run, step = on_executor({"prompt": "Loop.", "tools": [READ_FILE], "max_iterations": 3})

    assert run.status == "failed"
    assert run.error == (
        "step 'agent': the agent made 3 model turns without a final answer: its limit is 3 "
        "(max iterations)"
    )
    assert len(step.trace) == 6
