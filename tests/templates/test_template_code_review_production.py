"""The Code Review Bot as a maintainer runs it on a busy repository: GitHub's "Redeliver" of a
delivery that failed, malformed model answers, settings typed on the set-up page, a small model
context, trigger phrases that are commands, and sign-in as a GitHub App."""

from __future__ import annotations

import re

import jwt as pyjwt
import pytest

from flows.models import Flow, Run
from gallery.registry import use_template
from integrations.services import github_app
from tests.templates.support import REPO, connect, log_of, run_of
from tests.templates.test_template_code_review import (
    FILES,
    MARKER,
    NEW_SHA,
    comment_event,
    pr_event,
    review_answer,
)


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


def test_a_garbled_model_answer_is_asked_again_and_never_logs_a_traceback(
    review_bot, github, llm, deliver, caplog
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    gateway_page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    llm.fail_next(200, gateway_page, headers={"Content-Type": "text/html"})

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert "1 of 4 files reviewed" in comment["body"]
    assert "Possible SQL injection in src/app.py." in comment["body"]
    assert log_of(run, "warning") == [
        "review: The model failed on src/app.py, asking once more: The LLM server at 127.0.0.1 "
        "gave an answer that is not a chat completion for model llama3: an HTML page titled "
        "“502 Bad Gateway”."
    ]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_a_model_that_keeps_answering_garbage_is_named_in_the_comment(
    review_bot, github, llm, deliver, caplog
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    llm.fail_next(200, b"", path="/v1/chat/completions", times=2)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    [comment] = github.comments_on(REPO, 7)
    assert (
        "`src/app.py`: the model failed: The LLM server at 127.0.0.1 gave an answer that is not "
        "a chat completion for model llama3: an empty body (no content type)."
    ) in comment["body"]
    assert "Expecting value" not in comment["body"]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert run.status == "succeeded_with_errors"


def setup_form(flow: Flow, **settings: str) -> dict[str, str]:
    """The set-up page's form as it is shown (each setting at its value), with some typed over."""
    form = {
        f"connection__{alias}": c["connection"] for alias, c in flow.document["connections"].items()
    }
    for key, spec in flow.document["settings"].items():
        value = spec["value"]
        if isinstance(value, bool):
            if value:
                form[f"setting__{key}"] = "on"
            continue
        form[f"setting__{key}"] = "\n".join(value) if isinstance(value, list) else str(value)
    form.update({f"setting__{key}": value for key, value in settings.items()})
    return form


def test_ignore_globs_typed_with_commas_on_the_setup_page_are_each_a_pattern(
    client, user, github_connection, llm_connection, llm, github, deliver
):
    llm.respond = review_answer
    client.force_login(user)
    flow = use_template("code-review-bot", user)
    form = setup_form(flow, github_repo=REPO, ignore_globs="package-lock.json, yarn.lock,dist/*")
    form["deploy"] = "1"
    response = client.post(f"/flows/{flow.pk}/setup/", form, follow=True)
    assert "Deployed version 1. Your flow is live." in response.content.decode()
    flow.refresh_from_db()
    assert flow.document["settings"]["ignore_globs"]["value"] == [
        "package-lock.json",
        "yarn.lock",
        "dist/*",
    ]
    yarn = dict(FILES[1], filename="yarn.lock", patch='@@ -1 +1 @@\n-"x@1":\n+"x@2":')
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[FILES[0], yarn])

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert "`yarn.lock`: ignored by the pattern `yarn.lock`" in comment["body"]
    assert "1 of 2 files reviewed" in comment["body"]
    assert not [chat for chat in llm.chats if "yarn.lock" in chat["messages"][-1]["content"]]


@pytest.mark.parametrize(
    "text",
    ["/reviewers: @alice", "/review-bot is flaky", "Could someone /review this?", "> /review\nno"],
)
def test_a_comment_that_only_looks_like_the_trigger_phrase_starts_nothing(
    review_bot, github, deliver, text
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "issue_comment", comment_event(7, text)))

    assert run.status == "skipped"
    assert run.error == (
        "step 'should_review': the comment on #7 has no line starting with the command '/review'"
    )
    assert run.concurrency_key == ""  # so it cancels no review in progress
    assert github.comments_on(REPO, 7) == []


@pytest.mark.parametrize(
    "text", ["/review", "/REVIEW please", "Thanks!\n  /review\n", "/review: again"]
)
def test_the_trigger_phrase_as_a_command_on_any_line_starts_a_review(
    review_bot, github, deliver, text
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "issue_comment", comment_event(7, text)))

    assert run.status == "succeeded", run.error
    assert run.concurrency_key == f"{REPO}#7"
    [comment] = github.comments_on(REPO, 7)
    assert "requested by @octocat in a comment" in comment["body"]


def test_a_failed_runs_page_heads_with_one_sentence_and_folds_the_traceback(
    review_bot, github, deliver, client, user
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    github.tokens[github.token]["permissions"] = {"metadata": "read", "pull_requests": "read"}
    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    assert run.status == "failed"

    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/").content.decode()

    headline = re.search(r'<p class="run-error" role="alert">(.*?)</p>', page, re.S).group(1)
    assert headline == (
        "step &#x27;report_failure&#x27;: Could not report the failure on octo/hello#7: GitHub "
        "says this token lacks the issues: write or pull_requests: write permission."
    )
    folded = re.search(r'<details class="error-details">(.*?)</details>', page, re.S).group(1)
    assert "<summary>The whole error</summary>" in folded
    assert "Traceback (most recent call last):" in folded
    # The plan step's own error: one sentence too, its traceback and advice folded below.
    step_headline = re.findall(r'<p class="step-error-text" role="alert">(.*?)</p>', page, re.S)
    assert step_headline[0] == (
        "Could not write the review comment on octo/hello#7: GitHub says this token lacks the "
        "issues: write or pull_requests: write permission."
    )
    assert "Traceback" not in "".join(step_headline)


def test_the_llm_connections_smaller_context_sizes_the_parts_and_the_comment_says_what_was_seen(
    review_bot, github, llm, llm_connection, deliver
):
    llm_connection.config["context_size"] = 2048  # the setting keeps its default of 8192
    llm_connection.save()
    flow = review_bot()
    lines = [
        f"+    total_{i} = compute_the_value({i}, scale=factor)  # step {i}" for i in range(900)
    ]
    big = {
        "filename": "src/big.py",
        "status": "added",
        "additions": 900,
        "deletions": 0,
        "changes": 900,
        "patch": "@@ -0,0 +1,900 @@\n" + "\n".join(lines),
    }
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[big])

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    assert (
        "plan: Cutting the patches for a context of 2048 tokens, the LLM connection's context "
        "size (the context_size setting says 8192)."
    ) in log_of(run, "info")
    prompts = [c["messages"][-1]["content"] for c in llm.chats]
    file_prompts = [p for p in prompts if "Review the changes to `src/big.py`" in p]
    assert len(file_prompts) == 5
    for prompt in file_prompts:  # each whole, its instructions included
        assert "Answer with one JSON object and nothing else" in prompt
        assert "truncated to fit the model's context" not in prompt
    seen = sum(len(re.findall(r"^\s*\d+ \+", p, re.M)) for p in file_prompts)
    [comment] = github.comments_on(REPO, 7)
    assert (
        f"- `src/big.py`: reviewed the first {seen} of 900 changed lines (5 parts of the "
        "model's context)\n"
    ) in comment["body"]


def test_a_part_the_llm_connection_still_cuts_is_listed_as_partly_reviewed(
    review_bot, github, llm, llm_connection, deliver
):
    llm_connection.config["context_size"] = 1100  # smaller than the smallest part the plan cuts
    llm_connection.save()
    flow = review_bot()
    lines = [
        f"+    total_{i} = compute_the_value({i}, scale=factor)  # step {i}" for i in range(60)
    ]
    patch = "@@ -0,0 +1,60 @@\n" + "\n".join(lines)
    github.add_pull(
        REPO,
        7,
        title="Handle empty bodies",
        files=[dict(FILES[0], filename="src/big.py", status="added", patch=patch)],
    )

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert "### Partly reviewed" in comment["body"]
    assert (
        "### Partly reviewed\n\n- `src/big.py`: the LLM connection cut part 1, 2, 3 of 3 to fit "
        "its context: the model saw only the start\n"
    ) in comment["body"]
    assert all("Answer with one JSON object" in c["messages"][-1]["content"] for c in llm.chats)


# ---- GitHub App sign-in -------------------------------------------------------------------------

APP_ID = 4242


@pytest.fixture
def app_bot(from_template, user, llm_connection, llm, github, app_key):
    """The Code Review Bot signed in as a GitHub App installed as installation 1."""
    github_app.forget_tokens()
    github.add_app(APP_ID, app_key[1], installations=(1,))
    llm.respond = review_answer

    def make(**config):
        connect(
            user,
            "github",
            "Review App",
            {"app_id": str(APP_ID), **config},
            {"private_key": app_key[0]},
        )
        return from_template("code-review-bot", {"github_repo": REPO})

    yield make
    github_app.forget_tokens()


def test_a_github_app_reviews_with_one_installation_token_for_the_events_installation(
    app_bot, github, deliver
):
    flow = app_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    first = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    second = run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, sha=NEW_SHA)))

    assert first.status == second.status == "succeeded", (first.error, second.error)
    # The event's installation.id (1 in GitHub's payload) got the token, once for both runs.
    assert [r.path for r in github.minted] == ["/app/installations/1/access_tokens"]
    claims = pyjwt.decode(
        github.minted[0].headers["authorization"].removeprefix("Bearer "),
        app_key_public(github),
        algorithms=["RS256"],
    )
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] <= 600
    [comment] = github.comments_on(REPO, 7)  # found again as the App's own, and edited
    assert comment["user"]["login"] == "flowbot-app[bot]"
    assert f"`{NEW_SHA[:7]}`" in comment["body"]
    everything = " ".join(log_of(first) + log_of(second)) + repr(first.output) + first.error
    assert "PRIVATE KEY" not in everything and "ghs_" not in everything


def app_key_public(github) -> bytes:
    return github.apps[str(APP_ID)]["public_key"]


def test_a_revoked_installation_token_is_replaced_once_and_the_review_goes_on(
    app_bot, github, deliver
):
    flow = app_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    minted = next(t for t, info in github.tokens.items() if "installation" in info)
    del github.tokens[minted]  # GitHub revoked it (the installation's permissions changed)

    run = run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, sha=NEW_SHA)))

    assert run.status == "succeeded", run.error
    assert len(github.minted) == 2
    assert "plan: GitHub refused the App's installation token; signing in again." in log_of(
        run, "warning"
    )
    [comment] = github.comments_on(REPO, 7)
    assert f"`{NEW_SHA[:7]}`" in comment["body"]


def test_the_configured_installation_serves_events_that_name_none(app_bot, github, deliver):
    flow = app_bot(installation_id="77")
    github.apps[str(APP_ID)]["installations"] = {77}
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "issue_comment", comment_event(7, "/review")))

    assert run.status == "succeeded", run.error
    assert [r.path for r in github.minted] == ["/app/installations/77/access_tokens"]


def test_an_app_not_installed_for_the_event_says_so(app_bot, github, deliver):
    flow = app_bot()
    github.apps[str(APP_ID)]["installations"] = {5}
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "failed"
    assert (
        "GitHub says the GitHub App 4242 has no installation 1: install the App on the "
        "repository's account (the App's page → Install App), or correct the connection's "
        "installation ID."
    ) in run.error
