"""The Code Review Bot as a maintainer runs it on a busy repository: GitHub's "Redeliver" of a
delivery that failed, malformed model answers, settings typed on the set-up page, a small model
context, trigger phrases that are commands, and sign-in as a GitHub App."""

from __future__ import annotations

import pytest

from flows.models import Run
from tests.templates.support import REPO, run_of
from tests.templates.test_template_code_review import FILES, MARKER, pr_event, review_answer


@pytest.fixture
def review_bot(from_template, github_connection, llm_connection, llm):
    llm.respond = review_answer

    def make(**settings):
        return from_template("code-review-bot", {"github_repo": REPO, **settings})

    return make


def test_redelivering_a_delivery_whose_run_failed_reviews_again(review_bot, github, deliver):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    token = github.tokens.pop(github.token)  # revoked: not even the failure comment is written

    first = deliver(flow, "pull_request", pr_event("opened", 7), delivery="d-42")
    failed = run_of(first)
    assert failed.status == "failed"
    assert github.comments_on(REPO, 7) == []

    github.tokens[github.token] = token  # the maintainer fixed the token, then clicked Redeliver
    again = deliver(flow, "pull_request", pr_event("opened", 7), delivery="d-42")

    assert "duplicate" not in again
    rerun = run_of(again)
    assert rerun.pk != failed.pk
    assert rerun.status == "succeeded", rerun.error
    assert rerun.delivery_id == "d-42"
    assert rerun.rerun_of_id == failed.pk
    [comment] = github.comments_on(REPO, 7)
    assert MARKER in comment["body"]
    # The review that ran is a delivery like any other: redelivering it now is a duplicate.
    assert deliver(flow, "pull_request", pr_event("opened", 7), delivery="d-42") == {
        "run": rerun.pk,
        "duplicate": True,
    }
    assert Run.objects.filter(flow=flow).count() == 2
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert failed.delivery_id == f"d-42~failed-run-{failed.pk}"
