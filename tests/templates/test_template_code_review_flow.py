"""The Code Review Bot on the flow language: files reviewed several at once, the newest review of
a pull request wins, a file the model fails on is reported while the others are reviewed, and a
failure never leaves the "Reviewing…" placeholder behind."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db.models.signals import post_save

from flows.engine import executor
from flows.models import Run, StepRun
from tests.fakes.base import Answer, Recorded
from tests.templates.support import REPO, ScriptedLLM, log_of, run_of
from tests.templates.test_template_code_review import (
    FILES,
    MARKER,
    NEW_SHA,
    comment_event,
    pr_event,
    review_answer,
    steps_of,
)


class SlowLLM(ScriptedLLM):
    """The scripted model, taking `hang_s` to answer prompts that contain `hang_on`."""

    def __init__(self, **kwargs):
        self.hang_on: str | None = None
        self.hang_s = 0.0
        super().__init__(**kwargs)

    def dispatch(self, request: Recorded) -> Answer:
        if self.hang_on and self.hang_on in request.text:
            time.sleep(self.hang_s)
        return super().dispatch(request)


@pytest.fixture
def llm() -> Iterator[SlowLLM]:
    with SlowLLM(models=["llama3"], context_size=2048) as fake:
        yield fake


@pytest.fixture
def review_bot(from_template, github_connection, llm_connection, llm):
    llm.respond = review_answer

    def make(**changes):
        """Deploy the template; each keyword is a function that changes the document first."""
        return from_template("code-review-bot", {"github_repo": REPO}, **changes)

    return make


def python_files(*names: str) -> list[dict]:
    return [dict(FILES[0], filename=name) for name in names]


def test_files_are_reviewed_in_parallel_up_to_the_loops_concurrency(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    names = [f"src/mod_{n}.py" for n in range(8)]
    github.add_pull(REPO, 7, title="Handle empty bodies", files=python_files(*names))
    llm.latency = 0.2

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert "8 of 8 files reviewed" in comment["body"]
    for name in names:
        assert (
            f"<summary>`{name}` (modified, +2 −1): 1 potential issue</summary>" in comment["body"]
        )
    # Four files at a time (the loop's concurrency), then the roll-up alone.
    assert llm.max_in_flight == 4
    assert len(llm.chats) == 9
    reviews = StepRun.objects.filter(run=run, step_id="review")
    assert sorted(r.scope for r in reviews) == sorted(f"files[{n}]" for n in range(8))


def test_a_newer_push_cancels_the_queued_review_and_one_comment_holds_the_newest(
    review_bot, github, llm, deliver, settings
):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues: the test plays the worker
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    older = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    newer = run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, sha=NEW_SHA)))

    older.refresh_from_db()
    assert older.concurrency_key == newer.concurrency_key == f"{REPO}#7"
    assert older.status == Run.Status.CANCELLED and older.cancelled_by == newer
    assert executor.execute_run(older.pk, "older", manage_connections=False) == "finished"
    executor.execute_run(newer.pk, "newer", manage_connections=False)
    newer.refresh_from_db()
    assert newer.status == Run.Status.SUCCEEDED, newer.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\nCommit `9b8c7d6` · new commits pushed"
    )
    assert len(llm.chats) == 2  # the newer review's file and roll-up; nothing for the older


def test_a_newer_push_stops_the_running_review_before_its_files_are_reviewed(
    review_bot, github, llm, deliver, settings
):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    older = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    pushed: list[Run] = []

    def push_when_planned(sender, instance: StepRun, **kwargs) -> None:
        # The push arrives while the older review runs: its plan is done, its files are not.
        if instance.run_id == older.pk and instance.step_id == "plan" and not pushed:
            if instance.status == StepRun.Status.SUCCEEDED:
                body = pr_event("synchronize", 7, sha=NEW_SHA)
                pushed.append(run_of(deliver(flow, "pull_request", body)))

    post_save.connect(push_when_planned, sender=StepRun)
    try:
        executor.execute_run(older.pk, "older", manage_connections=False)
    finally:
        post_save.disconnect(push_when_planned, sender=StepRun)

    [newer] = pushed
    older.refresh_from_db()
    assert older.status == Run.Status.CANCELLED and older.cancelled_by == newer
    assert "replaced it" in older.error
    assert not StepRun.objects.filter(run=older, step_id__in=["review", "rollup", "post"]).exists()
    assert llm.chats == []
    # The older review left its placeholder; the newer one edits that same comment.
    [placeholder] = github.comments_on(REPO, 7)
    assert "⏳ Reviewing the changes of commit `4f2a9c1`" in placeholder["body"]

    executor.execute_run(newer.pk, "newer", manage_connections=False)

    newer.refresh_from_db()
    assert newer.status == Run.Status.SUCCEEDED, newer.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["id"] == placeholder["id"]
    assert comment["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\nCommit `9b8c7d6` · new commits pushed"
    )
    assert len(github.requests_to("POST", rf"/repos/{REPO}/issues/7/comments")) == 1


def test_only_events_that_start_a_review_cancel_the_review_in_progress(
    review_bot, github, deliver, settings
):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = review_bot()
    review = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    # The bot's own placeholder, a remark, a draft's push and another pull request's review.
    own = comment_event(7, f"## Code review of #7\n\n⏳ Reviewing…\n\n{MARKER}", login="flowbot")
    quiet = [
        run_of(deliver(flow, "issue_comment", own)),
        run_of(deliver(flow, "issue_comment", comment_event(7, "Looks good, thanks!"))),
        run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, draft=True))),
        run_of(deliver(flow, "issue_comment", comment_event(8, "/review"))),
    ]
    review.refresh_from_db()
    assert review.status == Run.Status.QUEUED
    assert [r.concurrency_key for r in quiet] == ["", "", "", f"{REPO}#8"]

    requested = run_of(deliver(flow, "issue_comment", comment_event(7, "/REVIEW again please")))

    review.refresh_from_db()
    assert requested.concurrency_key == f"{REPO}#7"
    assert review.status == Run.Status.CANCELLED and review.cancelled_by == requested


def test_a_model_timing_out_on_one_file_is_reported_and_the_other_files_are_reviewed(
    review_bot, github, llm, deliver, settings
):
    settings.FLOWS_LLM_TIMEOUT_S = 0.3
    flow = review_bot()
    names = ["src/a.py", "src/b.py", "src/slow.py", "src/d.py"]
    github.add_pull(REPO, 7, title="Handle empty bodies", files=python_files(*names))
    llm.hang_on, llm.hang_s = "`src/slow.py`", 1.0

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded_with_errors", run.error
    [comment] = github.comments_on(REPO, 7)
    body = comment["body"]
    error = "the model failed: The LLM server at 127.0.0.1 did not answer within 0.3 s."
    assert body.startswith(
        "## Code review of #7 “Handle empty bodies”\n\n"
        "Commit `4f2a9c1` · pull request opened · 3 of 4 files reviewed\n"
    )
    assert f"### Review errors\n\n- `src/slow.py`: {error}\n" in body
    for name in ("src/a.py", "src/b.py", "src/d.py"):
        assert f"<summary>`{name}` (modified, +2 −1): 1 potential issue</summary>" in body
    assert "<summary>`src/slow.py`" not in body
    assert "### Summary\n\nHandles requests without a JSON body" in body
    assert log_of(run, "error") == [f"review: The model failed on src/slow.py: {error[18:]}"]
    failed = StepRun.objects.get(run=run, step_id="review", scope="files[2]")
    assert failed.status == StepRun.Status.FAILED


def test_a_file_review_over_its_time_limit_is_reported_and_the_others_are_reviewed(
    review_bot, github, llm, deliver
):
    def short_limit(document):
        review = next(s for s in document["steps"] if s["id"] == "review")
        review["limits"] = {"timeout_s": 1}

    flow = review_bot(short_limit=short_limit)
    github.add_pull(
        REPO, 7, title="Handle empty bodies", files=python_files("src/a.py", "src/b.py")
    )
    llm.hang_on, llm.hang_s = "`src/b.py`", 1.5

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded_with_errors", run.error
    [comment] = github.comments_on(REPO, 7)
    assert "1 of 2 files reviewed" in comment["body"]
    # The model call gave up within the time the step could give it (about half a second of
    # its one; how much exactly depends on the machine), so the step itself said why.
    assert re.search(
        r"### Review errors\n\n- `src/b\.py`: the model failed: The LLM server at 127\.0\.0\.1 "
        r"did not answer within the 0\.\d s the step could give it of its time limit\.\n",
        comment["body"],
    )
    assert "<summary>`src/a.py` (modified, +2 −1): 1 potential issue</summary>" in comment["body"]


def test_a_roll_up_failing_for_good_still_posts_the_file_reviews_and_says_why(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    def respond(messages):
        if "Reviews of its files:" in messages[-1]["content"]:
            return Answer(500, {"error": {"message": "model crashed", "type": "server_error"}})
        return review_answer(messages)

    llm.respond = respond

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded_with_errors"
    error = (
        "The LLM server at 127.0.0.1 had a server error (500) for /chat/completions: model crashed."
    )
    assert steps_of(run)["rollup"].status == StepRun.Status.FAILED
    assert steps_of(run)["post"].status == StepRun.Status.SUCCEEDED
    [comment] = github.comments_on(REPO, 7)
    body = comment["body"]
    assert "⏳" not in body
    assert body.startswith(
        "## Code review of #7 “Handle empty bodies”\n\n"
        "Commit `4f2a9c1` · pull request opened · 1 of 4 files reviewed\n\n"
        # Without the roll-up, the risks are the files' most severe issues.
        "### Risks\n\n- `src/app.py`: Possible SQL injection in src/app.py.\n\n"
        f"### Summary\n\nThe overall summary could not be written: {error}\n\n### Files\n"
    )
    assert "<summary>`src/app.py` (modified, +2 −1): 1 potential issue</summary>" in body
    # The file once, then the roll-up twice (its retry), each with the client's three tries.
    assert len(llm.chats) == 1 + 2 * 3


def test_a_review_github_refuses_to_post_is_replaced_by_an_honest_failure_comment(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    refusal = {
        "message": "Validation Failed",
        "errors": [{"resource": "IssueComment", "code": "custom", "message": "body is too long"}],
    }
    github.fail_next(422, refusal, method="PATCH", path=r"/repos/.*/issues/comments/\d+")

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded_with_errors"
    assert steps_of(run)["post"].status == StepRun.Status.FAILED
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\n"
        f"⚠️ The review could not be finished: Could not write the review comment on {REPO}#7: "
    )
    assert "body is too long" in comment["body"]
    assert comment["body"].endswith(MARKER)
    assert (
        log_of(run, "info")[-1]
        == "report_failure: The comment says the review could not be finished."
    )


def test_the_concurrency_key_names_the_pull_request_of_both_event_kinds(
    review_bot, github, deliver, settings
):
    settings.FLOWS_EXECUTOR = "embedded"
    flow = review_bot()
    opened = run_of(deliver(flow, "pull_request", pr_event("opened", 12)))
    asked = run_of(deliver(flow, "issue_comment", comment_event(12, "/review")))
    assert opened.concurrency_key == asked.concurrency_key == f"{REPO}#12"


def test_the_builder_shows_every_step_of_the_template_apart_from_the_others():
    folder = Path(__file__).resolve().parents[2] / "flow_templates" / "code-review-bot"
    document = json.loads((folder / "flow.json").read_text())
    assert document["schema"] == "flowbuilder/flow@2"
    assert all(len(edge) == 3 for edge in document["edges"])
    nodes = ["trigger", *(s["id"] for s in document["steps"])]
    layout = document["layout"]
    assert sorted(layout) == sorted(nodes)
    # Nodes are 190 px wide and about 80 px high on the canvas.
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            apart_x = abs(layout[a]["x"] - layout[b]["x"]) >= 230
            apart_y = abs(layout[a]["y"] - layout[b]["y"]) >= 120
            assert apart_x or apart_y, (a, b)
