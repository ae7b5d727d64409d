"""The Code Review Bot's investigate mode: before commenting on a file, the model may read other
files of the repository through one read-only tool."""

from __future__ import annotations

from tests.fakes.llm import calls
from tests.templates.support import REPO, log_of, run_of
from tests.templates.test_template_code_review import FILES, MARKER, SHA, pr_event, review_answer

DB = "def load_user(request):\n    return request.session['user']\n"


def investigating(body: dict):
    """A model that reads src/db.py once before it reviews, then answers as usual."""
    messages = body["messages"]
    if body.get("tools") and not any(m["role"] == "tool" for m in messages):
        return calls(("read_file", {"path": "src/db.py"}))
    return review_answer([m for m in messages if m["role"] == "user"])


def test_in_investigate_mode_the_model_reads_another_file_before_it_comments(
    from_template, github_connection, llm_connection, github, llm, deliver
):
    flow = from_template("code-review-bot", {"github_repo": REPO, "investigate": True})
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES[:1])
    github.add_file(REPO, "src/db.py", DB)
    llm.replies += [investigating] * 3

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [read] = github.requests_to("GET", rf"/repos/{REPO}/contents/src/db.py")
    assert read.query == {"ref": SHA}, "the pull request's head commit"
    assert [r.method for r in github.requests if "/contents/" in r.path] == ["GET"]
    review_chats = [c for c in llm.chats if c.get("tools")]
    offered = review_chats[0]["tools"]
    assert [t["function"]["name"] for t in offered] == ["read_file"]
    answered = llm.chats[1]["messages"][-1]
    assert answered == {"role": "tool", "tool_call_id": answered["tool_call_id"], "content": DB}
    assert "review: Read src/db.py to review the change." in log_of(run, "info")
    [comment] = github.comments_on(REPO, 7)
    assert "Possible SQL injection in src/app.py." in comment["body"] and MARKER in comment["body"]


def test_without_investigate_mode_no_tool_is_offered(
    from_template, github_connection, llm_connection, github, llm, deliver
):
    flow = from_template("code-review-bot", {"github_repo": REPO})
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES[:1])
    llm.respond = review_answer

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    assert all("tools" not in chat for chat in llm.chats)
    assert github.requests_to("GET", rf"/repos/{REPO}/contents/.*") == []
