"""Repository Assistant: an agent answers questions asked in issues, or in comments starting with
the trigger phrase, after searching the code, reading files and listing pull requests; it keeps a
memory per issue."""

from __future__ import annotations

import pytest

from flows.models import StepRun
from tests.fakes.llm import calls
from tests.templates.support import REPO, payload, run_of

MARKER = "<!-- flowbuilder:repository-assistant -->"
ANSWER = "Set `FLOWS_WORKER_CONCURRENCY` (see `flowbuilder/settings.py`); PR #4 raised the default."


def issue_event(number: int, title: str, body: str) -> dict:
    event = payload("issues.opened")
    event["repository"]["full_name"] = REPO
    event["issue"].update(number=number, title=title, body=body)
    return event


def comment_event(number: int, body: str, login: str = "octocat", kind: str = "User") -> dict:
    event = payload("issue_comment.created")
    event["repository"]["full_name"] = REPO
    event["issue"].update(number=number, title="How many workers?")
    event["issue"].pop("pull_request", None)
    event["comment"].update(body=body, user={"login": login, "type": kind})
    return event


@pytest.fixture
def assistant(from_template, github_connection, llm_connection, github):
    github.add_repo(REPO)["issues"][21] = {"labels": []}
    github.add_file(
        REPO, "flowbuilder/settings.py", "CONCURRENCY = env_int('FLOWS_WORKER_CONCURRENCY', 4)"
    )
    github.add_file(REPO, "README.md", "# Flowbuilder")
    github.add_pull(REPO, 4, title="Raise the worker concurrency default")

    def make(**settings):
        return from_template("repository-assistant", {"github_repo": REPO, **settings})

    return make


def investigation():
    """The model's side of a sample issue: search, read, list pull requests, answer."""
    return [
        calls(("github_code_search", {"query": "concurrency"})),
        calls(
            ("github_file_read", {"path": "flowbuilder/settings.py"}),
            ("github_pulls_list", {"state": "all", "limit": 5}),
        ),
        ANSWER,
    ]


def test_a_new_issue_is_answered_once_after_the_agent_reads_the_repository(
    assistant, github, llm, deliver
):
    flow = assistant()
    llm.replies += investigation()

    run = run_of(deliver(flow, "issues", issue_event(21, "How many workers?", "Can I run more?")))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 21)
    assert comment["body"] == f"{ANSWER}\n\n{MARKER}"
    # The tools searched, read and listed this repository only: the flow fixes it.
    assert github.requests_to("GET", "/search/code")[0].query["q"] == f"concurrency repo:{REPO}"
    assert github.requests_to("GET", rf"/repos/{REPO}/contents/flowbuilder/settings.py")
    assert github.requests_to("GET", rf"/repos/{REPO}/pulls")
    first = llm.chats[0]
    assert first["messages"][0]["content"].startswith(
        f"You are the assistant of the GitHub repository {REPO}."
    )
    assert first["messages"][1]["content"].startswith("New issue #21 by @")
    assert sorted(t["function"]["name"] for t in first["tools"]) == [
        "github_code_search",
        "github_file_read",
        "github_pulls_list",
    ]
    agent = StepRun.objects.get(run=run, step_id="answer")
    called = [e.get("name") for e in agent.trace if e["kind"] == "tool"]
    # The second turn's two calls ran at the same time: they finish in either order.
    assert called[0] == "github_code_search"
    assert sorted(called[1:]) == ["github_file_read", "github_pulls_list"]


def test_a_follow_up_comment_with_the_phrase_remembers_the_issue(assistant, github, llm, deliver):
    flow = assistant()
    llm.replies += investigation()
    deliver(flow, "issues", issue_event(21, "How many workers?", "Can I run more?"))
    llm.replies += ["Yes: as many as your cores allow, plus one."]

    run = run_of(deliver(flow, "issue_comment", comment_event(21, "/ask Even on 2 cores?")))

    assert run.status == "succeeded", run.error
    follow_up = llm.chats[-1]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[2]["content"] == ANSWER
    assert follow_up[3]["content"].endswith("/ask Even on 2 cores?")
    assert len(github.comments_on(REPO, 21)) == 2


@pytest.mark.parametrize(
    ("body", "login", "kind"),
    [
        ("Thanks, that helped!", "octocat", "User"),
        (f"/ask again\n\n{MARKER}", "octocat", "User"),
        ("/ask what now?", "flowbot[bot]", "Bot"),
    ],
)
def test_comments_that_do_not_ask_are_skipped(assistant, github, llm, deliver, body, login, kind):
    flow = assistant()

    run = run_of(deliver(flow, "issue_comment", comment_event(21, body, login, kind)))

    assert run.status == "skipped"
    assert llm.chats == [] and github.comments_on(REPO, 21) == []
