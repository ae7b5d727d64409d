"""The flagship through the executor a deployment really uses: a Celery worker process in
distributed mode (PostgreSQL + Redis), the embedded executor's threads otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.models import Run
from tests.engine import live
from tests.templates.support import REPO, FeedGitHub
from tests.templates.test_template_code_review import EXPECTED_REVIEW, FILES, pr_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def shared_github() -> Iterator[FeedGitHub]:
    # One fake for the whole module: the worker process learns its URL once, when it starts.
    with FeedGitHub() as fake:
        yield fake


@pytest.fixture(scope="module")
def executor(django_db_setup, django_db_blocker, shared_github) -> Iterator[str]:
    with live.module_executor("templates", shared_github.url) as kind:
        yield kind


@pytest.fixture
def github(settings, shared_github) -> FeedGitHub:
    settings.FLOWS_GITHUB_API_URL = shared_github.url
    shared_github.comments.clear()
    shared_github.requests.clear()
    return shared_github


def test_the_review_bot_runs_on_the_deployments_executor(
    executor, settings, github, github_connection, llm_connection, llm, from_template, deliver
):
    from tests.templates.test_template_code_review import review_answer

    settings.FLOWS_EXECUTOR = executor
    llm.respond = review_answer
    flow = from_template("code-review-bot", {"github_repo": REPO})
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    answer = deliver(flow, "pull_request", pr_event("opened", 7))

    run = live.wait_until(
        lambda: Run.objects.filter(pk=answer["run"], finished_at__isnull=False).first(),
        60,
        f"run {answer['run']} to finish on the {executor} executor",
    )
    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"] == EXPECTED_REVIEW
