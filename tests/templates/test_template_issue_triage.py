"""Issue Triage: a new issue is classified by the model, labelled and answered."""

from __future__ import annotations

import json

import pytest

from flows.compiler import deploy
from tests.templates.support import REPO, log_of, payload, run_of


def issue_event(number: int, title: str, body: str) -> dict:
    event = payload("issues.opened")
    event["repository"]["full_name"] = REPO
    event["issue"].update(number=number, title=title, body=body)
    return event


@pytest.fixture
def triage(from_template, github_connection, llm_connection, github):
    github.add_repo(REPO)["issues"][12] = {"labels": []}

    def make(**settings):
        return from_template("issue-triage", {"github_repo": REPO, **settings})

    return make


def test_a_new_issue_is_labelled_and_answered_from_the_models_json(triage, github, llm, deliver):
    flow = triage(project_description="a web framework for bots")
    reply = "Thanks for the report! Which version do you run, and what did you send?"
    llm.replies.append(f"```json\n{json.dumps({'category': 'bug', 'reply': reply})}\n```")

    run = run_of(deliver(flow, "issues", issue_event(12, "Crash on empty body", "The app fails.")))

    assert run.status == "succeeded", run.error
    assert github.labels_on(REPO, 12) == ["bug"]
    [comment] = github.comments_on(REPO, 12)
    assert comment["body"] == reply
    prompt = llm.chats[0]["messages"][0]["content"]
    assert prompt.startswith(
        "You triage new issues of a web framework for bots.\n\nTitle: Crash on empty body\n"
    )
    assert log_of(run, "info") == ["triage: #12 is a bug (by the model); labelled 'bug'."]


def test_a_bad_answer_is_asked_again_and_the_second_one_is_used(triage, github, llm, deliver):
    flow = triage(labels={"feature": "kind/feature"})
    llm.replies += [
        "I think this is a feature request.",
        json.dumps({"category": "feature", "reply": "Good idea, thanks!"}),
    ]

    run = run_of(deliver(flow, "issues", issue_event(12, "Support Matrix", "Please add it.")))

    assert run.status == "succeeded", run.error
    assert github.labels_on(REPO, 12) == ["kind/feature"]
    assert [c["body"] for c in github.comments_on(REPO, 12)] == ["Good idea, thanks!"]
    assert [m["role"] for m in llm.chats[1]["messages"]] == ["user", "assistant", "user"]
    assert log_of(run, "warning") == [
        "triage: The model's answer was not the JSON asked for (attempt 1)."
    ]


def test_when_the_model_never_answers_properly_keywords_decide(triage, github, llm, deliver):
    flow = triage()
    llm.replies += ['{"category": "urgent"}', "Sorry, I cannot help with that."]

    run = run_of(
        deliver(
            flow,
            "issues",
            issue_event(12, "Typo in the README", "The docs say 'teh' in the tutorial."),
        )
    )

    assert run.status == "succeeded", run.error
    assert github.labels_on(REPO, 12) == ["documentation"]
    assert [c["body"] for c in github.comments_on(REPO, 12)] == [
        "Thank you for opening this issue! It has been labelled **docs**; a maintainer will "
        "look at it soon."
    ]
    assert log_of(run, "info") == [
        "triage: #12 is a docs (by keywords, the model's answer was unusable); "
        "labelled 'documentation'."
    ]


def test_a_model_that_hangs_past_the_steps_limit_still_leaves_a_label_and_a_reply(
    triage, github, llm, deliver
):
    """The model call gives up with time to spare, and the keyword fallback labels and answers."""
    flow = triage()
    document = flow.document
    next(s for s in document["steps"] if s.get("limits"))["limits"]["timeout_s"] = 3
    flow.document = document
    flow.save()
    deploy(flow, flow.owner)
    llm.latency = 5  # longer than the step may take

    run = run_of(deliver(flow, "issues", issue_event(12, "Typo in the README", "It says 'teh'.")))

    assert run.status == "succeeded", run.error
    assert github.labels_on(REPO, 12) == ["documentation"]
    assert len(github.comments_on(REPO, 12)) == 1
    assert any("the step could give it" in line for line in log_of(run, "error"))
