"""PR Summary and Labeler: size and area labels, and a summary section in the description."""

from __future__ import annotations

import pytest

from tests.templates.support import REPO, log_of, payload, run_of

FILES = [
    {
        "filename": "docs/guide.md",
        "status": "modified",
        "additions": 5,
        "deletions": 1,
        "patch": "@@ -1,2 +1,6 @@\n # Guide\n-Old intro.\n+New intro.\n+\n+## Empty bodies\n+\n+Send {}.",
    },
    {
        "filename": "src/app.py",
        "status": "modified",
        "additions": 40,
        "deletions": 10,
        "patch": "@@ -1,10 +1,40 @@\n" + "\n".join(f"+line {i}" for i in range(40)),
    },
    {
        "filename": "package-lock.json",
        "status": "modified",
        "additions": 300,
        "deletions": 200,
        "patch": "@@ -1 +1 @@\n-a\n+b",
    },
]
SUMMARY = (
    "Handles empty request bodies.\n\n- Defaults the body to `{}`\n- Documents it in the guide"
)
SECTION = (
    "<!-- flowbuilder:summary:start -->\n### Summary\n\n"
    f"{SUMMARY}\n\n<sub>Written by Flowbuilder.</sub>\n<!-- flowbuilder:summary:end -->"
)


def pr_event(action: str, number: int) -> dict:
    body = payload("pull_request.opened")
    body["action"] = action
    body["number"] = number
    body["repository"]["full_name"] = REPO
    body["pull_request"].update(number=number, title="Handle empty bodies", body="Fixes a crash.")
    return body


@pytest.fixture
def labeler(from_template, github_connection, llm_connection, llm):
    llm.replies.extend([SUMMARY] * 3)

    def make(**settings):
        return from_template("pr-summary-labeler", {"github_repo": REPO, **settings})

    return make


def test_a_pull_request_is_labelled_by_size_and_area_and_summarised_in_its_description(
    labeler, github, llm, deliver
):
    flow = labeler()
    github.add_pull(REPO, 3, title="Handle empty bodies", body="Fixes a crash.", files=FILES)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 3)))

    assert run.status == "succeeded", run.error
    # 56 changed lines (the lock file does not count): M is 30 to 99.
    assert github.labels_on(REPO, 3) == ["size/M", "area/docs"]
    pull = github.repos[REPO]["pulls"][3]["pull"]
    assert pull["body"] == f"Fixes a crash.\n\n{SECTION}"
    assert github.comments_on(REPO, 3) == []
    prompt = llm.chats[0]["messages"][-1]["content"]
    assert "- package-lock.json (modified, +300 -200)" in prompt
    assert "--- src/app.py\n@@ -1,10 +1,40 @@\n+line 0" in prompt
    assert log_of(run, "info") == [
        "summarize: Labelled #3: size/M, area/docs (56 changed lines).",
        "summarize: Summary written to the description.",
    ]


def test_a_new_push_replaces_only_our_section_and_keeps_the_authors_edits(labeler, github, deliver):
    flow = labeler()
    github.add_pull(REPO, 3, title="Handle empty bodies", body="Fixes a crash.", files=FILES)
    run_of(deliver(flow, "pull_request", pr_event("opened", 3)))
    pull = github.repos[REPO]["pulls"][3]["pull"]
    pull["body"] = f"Fixes a crash.\n\n{SECTION}\n\nP.S. Tested by hand."
    github.repos[REPO]["pulls"][3]["files"] = FILES[:2] + [
        {
            "filename": "tests/test_app.py",
            "status": "added",
            "additions": 60,
            "deletions": 0,
            "patch": "@@ -0,0 +1,60 @@\n+def test(): pass",
        }
    ]

    run = run_of(deliver(flow, "pull_request", pr_event("synchronize", 3)))

    assert run.status == "succeeded", run.error
    assert pull["body"] == f"Fixes a crash.\n\n{SECTION}\n\nP.S. Tested by hand."
    assert pull["body"].count("flowbuilder:summary:start") == 1
    # 116 changed lines now: L replaces M; area labels are only ever added.
    assert github.labels_on(REPO, 3) == ["area/docs", "size/L", "area/tests"]
    assert log_of(run, "info")[:2] == [
        "summarize: Labelled #3: size/L, area/docs, area/tests (116 changed lines).",
        "summarize: Removed the old size label: size/M.",
    ]


def test_the_summary_can_go_to_a_comment_and_areas_are_configurable(labeler, github, deliver):
    flow = labeler(summary_in="comment", area_labels="src/* = backend\n*.md = docs")
    github.add_pull(REPO, 3, title="Handle empty bodies", body="Fixes a crash.", files=FILES)

    run_of(deliver(flow, "pull_request", pr_event("opened", 3)))
    run = run_of(deliver(flow, "pull_request", pr_event("synchronize", 3)))

    assert run.status == "succeeded", run.error
    assert github.labels_on(REPO, 3) == ["size/M", "backend", "docs"]
    [comment] = github.comments_on(REPO, 3)
    assert comment["body"] == f"{SECTION}\n\n<!-- flowbuilder:pr-summary -->"
    assert github.repos[REPO]["pulls"][3]["pull"]["body"] == "Fixes a crash."
