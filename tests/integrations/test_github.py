"""GitHub capabilities against a fake GitHub API on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from flows.capabilities import CapabilityError
from tests.integrations.support import call

REPO = "octo/hello"


@pytest.fixture
def gh(github, recorder):
    """A capability context bound to the fake's token, and a pull request with 250 files."""
    files = [
        {
            "filename": f"src/file{i}.py",
            "status": "modified",
            "additions": 1,
            "deletions": 0,
            "patch": f"@@ -1 +1 @@\n-old {i}\n+new {i}",
        }
        for i in range(250)
    ]
    github.add_pull(REPO, 7, title="Speed up parsing", body="Please review", files=files)
    return recorder.context(secrets={"token": github.token})


def test_pr_get_returns_githubs_pull_request(gh):
    pull = call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert pull["title"] == "Speed up parsing"
    assert pull["number"] == 7


def test_pr_files_follows_every_page_of_the_link_header(github, gh):
    files = call("github.pr.files", gh, {"repo": REPO, "number": 7})
    assert [f["filename"] for f in files] == [f"src/file{i}.py" for i in range(250)]
    pages = github.requests_to("GET", r"/repos/octo/hello/pulls/7/files")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3"]


def test_pr_diff_asks_github_for_the_diff_media_type(github, gh):
    diff = call("github.pr.diff", gh, {"repo": REPO, "number": 7})["diff"]
    assert diff.startswith("diff --git a/src/file0.py b/src/file0.py\n@@ -1 +1 @@\n-old 0\n+new 0")
    assert github.requests[-1].headers["accept"] == "application/vnd.github.diff"


def test_requests_carry_the_token_and_api_version(github, gh):
    call("github.pr.get", gh, {"repo": REPO, "number": 7})
    headers = github.requests[-1].headers
    assert headers["authorization"] == f"Bearer {github.token}"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"] == "Flowbuilder"


def test_missing_repository_is_named_in_the_error(gh):
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": "octo/nope", "number": 7})
    assert error.value.message == (
        "GitHub says the repository octo/nope was not found or the token cannot see it."
    )
    assert error.value.retryable is False


def test_missing_pull_request_in_an_existing_repository_is_told_apart(gh):
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": 99})
    assert error.value.message == "GitHub says pull request octo/hello#99 was not found."


def test_bad_token_says_so(gh):
    gh.secrets = {"token": "ghp_revoked"}
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert error.value.message == (
        "GitHub says the token is invalid or has expired (Bad credentials)."
    )


def test_missing_permission_is_read_from_the_accepted_permissions_header(github, gh):
    github.add_token("ghp_readonly", "flowbot", {"pull_requests": "read", "issues": "read"})
    gh.secrets = {"token": "ghp_readonly"}
    with pytest.raises(CapabilityError) as error:
        call("github.pr.update", gh, {"repo": REPO, "number": 7, "title": "New"})
    assert (
        error.value.message == "GitHub says this token lacks the pull_requests: write permission."
    )
    with pytest.raises(CapabilityError) as error:
        call("github.comment.create", gh, {"repo": REPO, "number": 7, "body": "hi"})
    assert error.value.message == (
        "GitHub says this token lacks the issues: write or pull_requests: write permission."
    )


def test_secondary_rate_limit_is_waited_out_as_retry_after_asks(github, gh, recorder):
    github.rate_limit_next(retry_after=1)
    started = time.monotonic()
    pull = call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert pull["number"] == 7
    assert time.monotonic() - started >= 1
    assert recorder.logs == [
        (
            "warning",
            "GitHub's secondary rate limit was hit; it asks to wait 1 s. "
            "Retrying in 1.0 s (attempt 2 of 3).",
        )
    ]


def test_a_wait_longer_than_the_cap_fails_at_once_as_retryable(github, gh, settings):
    settings.FLOWS_HTTP_RETRY_AFTER_MAX_S = 5
    github.rate_limit_next(retry_after=120)
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert error.value.message == "GitHub's secondary rate limit was hit; it asks to wait 2 min."
    assert error.value.retryable is True
    assert len(github.requests_to("GET", r"/repos/octo/hello/pulls/7")) == 1


def test_exhausted_rate_limit_reports_when_it_resets(github, gh):
    github.exhaust_rate_limit(resets_in=600)
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert error.value.message.startswith(
        "GitHub's API rate limit for this token is used up; it resets in"
    )
    assert error.value.retryable is True


def test_server_errors_are_retried_with_backoff_then_reported_as_retryable(github, gh, recorder):
    github.fail_next(502, "<html>Bad gateway</html>", times=3)
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": 7})
    assert error.value.message == ("GitHub had a server error (502) for pull request octo/hello#7.")
    assert error.value.retryable is True
    assert [m for _, m in recorder.logs] == [
        "GitHub had a server error (502) for pull request octo/hello#7. Retrying in 0.0 s "
        "(attempt 2 of 3).",
        "GitHub had a server error (502) for pull request octo/hello#7. Retrying in 0.0 s "
        "(attempt 3 of 3).",
    ]


def test_a_failed_post_is_not_resent_when_github_may_have_acted(github, gh):
    github.fail_next(502, "", method="POST")
    with pytest.raises(CapabilityError) as error:
        call("github.comment.create", gh, {"repo": REPO, "number": 7, "body": "hello"})
    assert error.value.retryable is True
    assert len(github.requests_to("POST", r".*/comments")) == 1


def test_validation_errors_list_githubs_reasons(gh):
    with pytest.raises(CapabilityError) as error:
        call("github.comment.create", gh, {"repo": REPO, "number": 7, "body": " "})
    assert error.value.message == (
        "GitHub rejected pull request or issue octo/hello#7: Validation Failed "
        "(IssueComment body missing_field)."
    )


def test_comment_create_list_and_update(github, gh):
    first = call("github.comment.create", gh, {"repo": REPO, "number": 7, "body": "one"})
    call("github.issue.reply", gh, {"repo": REPO, "number": 7, "body": "two"})
    listed = call("github.comments.list", gh, {"repo": REPO, "number": 7})
    assert [c["body"] for c in listed] == ["one", "two"]
    updated = call(
        "github.comment.update", gh, {"repo": REPO, "comment_id": first["id"], "body": "uno"}
    )
    assert updated["body"] == "uno"
    assert [c["body"] for c in github.comments_on(REPO, 7)] == ["uno", "two"]


def test_comments_list_reads_every_page(github, gh):
    for i in range(130):
        github.add_comment(REPO, 7, f"comment {i}")
    listed = call("github.comments.list", gh, {"repo": REPO, "number": 7})
    assert len(listed) == 130


def test_upsert_creates_then_edits_the_same_marked_comment(github, gh):
    payload = {"repo": REPO, "number": 7, "marker": "review", "body": "Reviewing..."}
    first = call("github.comment.upsert", gh, payload)
    assert first["created"] is True
    assert first["comment"]["body"] == "Reviewing...\n\n<!-- flowbuilder:review -->"
    second = call("github.comment.upsert", gh, {**payload, "body": "All good."})
    assert second == {
        "comment": {**second["comment"], "id": first["comment"]["id"]},
        "created": False,
    }
    assert [c["body"] for c in github.comments_on(REPO, 7)] == [
        "All good.\n\n<!-- flowbuilder:review -->"
    ]


def test_upsert_recreates_the_comment_after_someone_deleted_it(github, gh):
    payload = {"repo": REPO, "number": 7, "marker": "review", "body": "v1"}
    first = call("github.comment.upsert", gh, payload)
    del github.comments[first["comment"]["id"]]
    again = call("github.comment.upsert", gh, {**payload, "body": "v2"})
    assert again["created"] is True
    assert [c["body"] for c in github.comments_on(REPO, 7)] == ["v2\n\n<!-- flowbuilder:review -->"]


def test_find_ignores_a_marked_comment_written_by_someone_else(github, gh):
    github.add_comment(REPO, 7, "copied <!-- flowbuilder:review -->", login="mallory")
    assert call("github.comment.find", gh, {"repo": REPO, "number": 7, "marker": "review"}) is None
    ours = github.add_comment(REPO, 7, "ours <!-- flowbuilder:review -->", login="flowbot")
    found = call("github.comment.find", gh, {"repo": REPO, "number": 7, "marker": "review"})
    assert found["id"] == ours["id"]


def test_markers_that_could_break_out_of_the_html_comment_are_refused(gh):
    with pytest.raises(CapabilityError) as error:
        call("github.comment.find", gh, {"repo": REPO, "number": 7, "marker": "x -->"})
    assert error.value.message == (
        "'marker' may hold only letters, digits and _ . : / - (at most 100), got 'x -->'."
    )


def test_labels_issue_and_pr_update(github, gh):
    labels = call("github.labels.add", gh, {"repo": REPO, "number": 7, "labels": ["bug", "ai"]})
    assert [label["name"] for label in labels] == ["bug", "ai"]
    assert github.labels_on(REPO, 7) == ["bug", "ai"]
    issue = call("github.issue.create", gh, {"repo": REPO, "title": "Flaky test", "labels": ["ci"]})
    assert (issue["number"], issue["title"]) == (8, "Flaky test")
    pull = call("github.pr.update", gh, {"repo": REPO, "number": 7, "body": "Summary: ok"})
    assert pull["body"] == "Summary: ok"


def test_labels_are_removed_and_labels_not_on_it_are_skipped(github, gh):
    call("github.labels.add", gh, {"repo": REPO, "number": 7, "labels": ["size/XS", "bug", "ai"]})
    left = call(
        "github.labels.remove", gh, {"repo": REPO, "number": 7, "labels": ["size/XS", "wontfix"]}
    )
    assert [label["name"] for label in left] == ["bug", "ai"]
    assert github.labels_on(REPO, 7) == ["bug", "ai"]
    # The name is one path segment: its "/" travels encoded.
    [delete] = github.requests_to("DELETE", r".*/labels/.*")
    assert delete.path == f"/repos/{REPO}/issues/7/labels/size%2FXS"
    # Nothing to remove: no DELETE, and the labels as they are.
    assert [
        x["name"]
        for x in call("github.labels.remove", gh, {"repo": REPO, "number": 7, "labels": ["x"]})
    ] == ["bug", "ai"]
    assert len(github.requests_to("DELETE", r".*/labels/.*")) == 1

    with pytest.raises(CapabilityError) as error:
        call("github.labels.remove", gh, {"repo": REPO, "number": 99, "labels": ["bug"]})
    assert error.value.message == f"GitHub says pull request or issue {REPO}#99 was not found."


def test_binding_limits_refuse_other_repositories(github, gh):
    gh.limits = {"repos": ["octo/hello", "acme/*"]}
    assert call("github.pr.get", gh, {"repo": "Octo/Hello", "number": 7})["number"] == 7
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": "evil/repo", "number": 1})
    assert error.value.message == (
        "This step may use only these GitHub repositories: octo/hello, acme/*; "
        "evil/repo is not one of them."
    )
    assert not github.requests_to("GET", r"/repos/evil/.*")


def test_payloads_are_checked_before_any_call(github, gh):
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO})
    assert error.value.message == "github.pr.get needs 'number' (the pull request or issue number)."
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "number": "seven"})
    assert error.value.message == "github.pr.get: 'number' must be a whole number, got 'seven'."
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": REPO, "numbr": 7})
    assert (
        error.value.message == "github.pr.get does not take 'numbr'; its fields are repo, number."
    )
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", gh, {"repo": "hello", "number": 7})
    assert error.value.message == "'repo' must look like owner/name, got 'hello'."
    assert github.requests == []


def test_a_connection_without_a_token_is_explained(recorder):
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", recorder.context(secrets={}), {"repo": REPO, "number": 7})
    assert error.value.message == "The GitHub connection has no token: add one to the connection."


def test_api_url_from_the_connection_reaches_github_enterprise(github, recorder, settings):
    settings.FLOWS_GITHUB_API_URL = "http://127.0.0.1:9"  # nothing listens there
    ctx = recorder.context(secrets={"token": github.token}, config={"api_url": github.url})
    github.add_pull(REPO, 1)
    assert call("github.pr.get", ctx, {"repo": REPO, "number": 1})["number"] == 1


def test_a_connection_api_url_on_a_private_address_is_refused(github, recorder, settings):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = False
    ctx = recorder.context(secrets={"token": github.token}, config={"api_url": github.url})
    with pytest.raises(CapabilityError) as error:
        call("github.pr.get", ctx, {"repo": REPO, "number": 1})
    port = github.url.rsplit(":", 1)[1]
    assert error.value.message == (
        "GitHub cannot be reached: 127.0.0.1 resolves to 127.0.0.1, a private, loopback or "
        "link-local address, and outbound requests to such addresses are refused (an operator "
        f"can allow this one with FLOWS_PRIVATE_HOSTS=github=127.0.0.1:{port})."
    )
    assert github.requests == []


def test_an_answer_over_the_size_cap_is_refused(github, gh, settings):
    settings.FLOWS_HTTP_RESPONSE_MAX_BYTES = 10_000
    with pytest.raises(CapabilityError) as error:
        call("github.pr.files", gh, {"repo": REPO, "number": 7})
    assert error.value.message == "The answer from GitHub is larger than the limit of 10,000 bytes."
    assert error.value.retryable is False
