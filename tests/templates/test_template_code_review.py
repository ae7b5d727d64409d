"""The Code Review Bot, from "use template" to the review comment on the fake GitHub."""

from __future__ import annotations

import json
import re

import pytest

from flows.models import Run, StepRun
from tests.fakes.base import Answer
from tests.templates.support import REPO, log_of, payload, run_of

MARKER = "<!-- flowbuilder:code-review -->"
APP_PATCH = (
    "@@ -10,4 +10,5 @@ def handler(request):\n"
    "     user = load_user(request)\n"
    "-    data = request.json\n"
    "+    data = request.json or {}\n"
    "+    query = f\"SELECT * FROM t WHERE id = {data['id']}\"\n"
    "     return respond(data)"
)
FILES = [
    {
        "filename": "src/app.py",
        "status": "modified",
        "additions": 2,
        "deletions": 1,
        "changes": 3,
        "patch": APP_PATCH,
    },
    {
        "filename": "package-lock.json",
        "status": "modified",
        "additions": 1,
        "deletions": 1,
        "changes": 2,
        "patch": '@@ -1 +1 @@\n-"x": 1\n+"x": 2',
    },
    {"filename": "docs/logo.png", "status": "added", "additions": 0, "deletions": 0, "changes": 0},
    {
        "filename": "docs/guide.md",
        "previous_filename": "docs/intro.md",
        "status": "renamed",
        "additions": 0,
        "deletions": 0,
        "changes": 0,
    },
]
SHA = "4f2a9c1d0e5b6a7980c1d2e3f4a5b6c7d8e9f001"
NEW_SHA = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"


def steps_of(run: Run) -> dict[str, StepRun]:
    """The last record of each top-level step of the run, by step id."""
    return {r.step_id: r for r in StepRun.objects.filter(run=run, scope="").order_by("id")}


def review_answer(messages: list[dict]) -> str:
    """A model that follows the prompts: a JSON review per file part, a JSON roll-up."""
    prompt = messages[-1]["content"]
    if "Reviews of its files:" in prompt:
        return json.dumps(
            {
                "risks": ["An SQL query is built from request data (src/app.py line 12)."],
                "summary": "Handles requests without a JSON body and adds a lookup query.",
            }
        )
    path = re.search(r"Review the changes to `([^`]+)`", prompt).group(1)
    first_added = re.search(r"^\s*(\d+) \+", prompt, re.M)
    return json.dumps(
        {
            "issues": [
                {
                    "line": int(first_added.group(1)) + 1 if first_added else None,
                    "severity": "high",
                    "message": f"Possible SQL injection in {path}.",
                }
            ],
            "summary": f"Changes {path}.",
        }
    )


def pr_event(action: str, number: int, *, sha: str = SHA, draft: bool = False) -> dict:
    body = payload("pull_request.synchronize" if action == "synchronize" else "pull_request.opened")
    body["action"] = action
    body["number"] = number
    body["repository"]["full_name"] = REPO
    pull = body["pull_request"]
    pull.update(
        number=number,
        title="Handle empty bodies",
        body="Fixes a crash on empty requests.",
        draft=draft,
        html_url=f"https://github.com/{REPO}/pull/{number}",
    )
    pull["head"]["sha"] = sha
    return body


def comment_event(number: int, text: str, *, on_pull: bool = True, login: str = "octocat") -> dict:
    body = payload("issue_comment.created")
    body["repository"]["full_name"] = REPO
    body["issue"]["number"] = number
    if on_pull:
        body["issue"]["pull_request"] = {
            "url": f"https://api.github.com/repos/{REPO}/pulls/{number}"
        }
    body["comment"]["body"] = text
    body["comment"]["user"]["login"] = login
    return body


@pytest.fixture
def review_bot(from_template, github_connection, llm_connection, llm):
    llm.respond = review_answer

    def make(**settings):
        return from_template("code-review-bot", {"github_repo": REPO, **settings})

    return make


EXPECTED_REVIEW = f"""## Code review of #7 “Handle empty bodies”

Commit `4f2a9c1` · pull request opened · 1 of 4 files reviewed

### Risks

- An SQL query is built from request data (src/app.py line 12).

### Summary

Handles requests without a JSON body and adds a lookup query.

### Files

<details open>
<summary>`src/app.py` (modified, +2 −1): 1 potential issue</summary>

- 🔴 **high** [line 12](https://github.com/{REPO}/blob/{SHA}/src/app.py#L12): Possible SQL injection in src/app.py.

**Changes:** Changes src/app.py.

</details>

### Not reviewed

- `package-lock.json`: ignored by the pattern `package-lock.json`
- `docs/logo.png`: binary, or too large for GitHub to show a diff
- `docs/guide.md`: renamed from `docs/intro.md` without changes

<sub>Flowbuilder Code Review Bot · comment `/review` to review again</sub>

{MARKER}"""


def test_opened_pull_request_gets_a_placeholder_then_the_review_in_the_same_comment(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    comments = github.comments_on(REPO, 7)
    assert len(comments) == 1
    assert comments[0]["body"] == EXPECTED_REVIEW
    assert comments[0]["user"]["login"] == "flowbot"
    posted = github.requests_to("POST", rf"/repos/{REPO}/issues/7/comments")
    edited = github.requests_to("PATCH", r"/repos/.*/issues/comments/\d+")
    assert [r.json["body"] for r in posted] == [
        "## Code review of #7 “Handle empty bodies”\n\n⏳ Reviewing the changes of commit "
        "`4f2a9c1`; this may take a few minutes. This comment will be updated with the review."
        f"\n\n{MARKER}"
    ]
    assert [r.json["body"] for r in edited] == [EXPECTED_REVIEW]
    # One call for the one reviewable file, one for the roll-up: skipped files cost nothing.
    assert len(llm.chats) == 2
    assert "  11 +    data = request.json or {}" in llm.chats[0]["messages"][-1]["content"]
    assert log_of(run, "info") == [
        f"check: Reviewing {REPO}#7: pull request opened",
        "review: Reviewed src/app.py: 1 potential issues.",
        "post: Review posted: 1 files reviewed, 3 skipped, 0 failed, 1 potential issues.",
    ]


def test_new_commits_edit_the_same_comment_once(review_bot, github, llm, deliver):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    posted_before = len(github.requests_to("POST", r"/repos/.*/issues/7/comments"))
    edits_before = len(github.requests_to("PATCH", r"/repos/.*/issues/comments/\d+"))

    run = run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, sha=NEW_SHA)))

    assert run.status == "succeeded", run.error
    comments = github.comments_on(REPO, 7)
    assert len(comments) == 1
    assert len(github.requests_to("POST", r"/repos/.*/issues/7/comments")) == posted_before == 1
    edits = github.requests_to("PATCH", r"/repos/.*/issues/comments/\d+")[edits_before:]
    assert [e.path for e in edits] == [f"/repos/{REPO}/issues/comments/{comments[0]['id']}"]
    assert comments[0]["body"] == edits[0].json["body"]
    assert comments[0]["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\n"
        "Commit `9b8c7d6` · new commits pushed · 1 of 4 files reviewed\n"
    )
    assert f"/blob/{NEW_SHA}/src/app.py#L12" in comments[0]["body"]


def test_a_deleted_review_comment_is_posted_again(review_bot, github, deliver):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    run_of(deliver(flow, "pull_request", pr_event("opened", 7)))
    github.comments.clear()

    run = run_of(deliver(flow, "pull_request", pr_event("synchronize", 7, sha=NEW_SHA)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\nCommit `9b8c7d6`"
    )


def test_a_comment_starting_with_the_trigger_phrase_starts_a_review(
    review_bot, github, llm, deliver
):
    flow = review_bot(trigger_phrase="@bot review")
    renamed = {
        "filename": "src/handlers.py",
        "previous_filename": "src/views.py",
        "status": "renamed",
        "additions": 1,
        "deletions": 1,
        "changes": 2,
        "patch": "@@ -3,3 +3,3 @@\n import json\n-from views import x\n+from handlers import x\n ok",
    }
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[renamed])

    run = run_of(deliver(flow, "issue_comment", comment_event(7, "@Bot REVIEW this again, please")))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"].startswith(
        "## Code review of #7 “Handle empty bodies”\n\n"
        "Commit `abc123` · requested by @octocat in a comment · 1 of 1 files reviewed\n"
    )
    assert (
        "<summary>`src/views.py` → `src/handlers.py` (renamed, +1 −1): 1 potential issue</summary>"
    ) in comment["body"]
    assert (
        "Review the changes to `src/handlers.py` (renamed from `src/views.py`)."
        in (llm.chats[0]["messages"][-1]["content"])
    )
    assert comment["body"].endswith(
        "<sub>Flowbuilder Code Review Bot · comment `@bot review` to review again</sub>"
        f"\n\n{MARKER}"
    )


@pytest.mark.parametrize(
    ("event", "body", "flow_settings", "reason"),
    [
        (
            "issue_comment",
            comment_event(7, f"/review\n\nreviewing…\n\n{MARKER}", login="flowbot"),
            {},
            "the comment is the bot's own",
        ),
        (
            "issue_comment",
            comment_event(7, "/review", login="review-bot[bot]"),
            {"bot_login": "review-bot[bot]"},
            "the comment is the bot's own",
        ),
        (
            "issue_comment",
            comment_event(7, "/review", on_pull=False),
            {},
            "#7 is an issue, not a pull request",
        ),
        (
            "issue_comment",
            comment_event(7, "Looks good, but please /review the tests"),
            {},
            "the comment on #7 has no line starting with the command '/review'",
        ),
        (
            "pull_request",
            pr_event("opened", 7, draft=True),
            {},
            "pull request #7 is a draft (turn on review_drafts to review drafts)",
        ),
    ],
    ids=["own-marker", "own-login", "plain-issue", "no-phrase", "draft"],
)
def test_events_that_must_not_start_a_review_end_as_skipped_with_the_reason(
    review_bot, github, llm, deliver, event, body, flow_settings, reason
):
    flow = review_bot(**flow_settings)
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, event, body))

    assert run.status == "skipped"
    assert run.error == f"step 'should_review': {reason}"
    assert log_of(run) == [f"check: Skipped: {reason}", f"should_review: run skipped: {reason}"]
    assert github.comments_on(REPO, 7) == []
    assert llm.chats == []


def test_a_deleted_comment_starts_nothing(review_bot, github, deliver):
    flow = review_bot()
    body = comment_event(7, "/review")
    body["action"] = "deleted"

    answer = deliver(flow, "issue_comment", body)

    assert answer == {
        "ignored": "event issue_comment.deleted is not one of this flow's events "
        "(pull_request.opened, pull_request.reopened, pull_request.synchronize, "
        "pull_request.ready_for_review, issue_comment.created)"
    }
    assert not flow.runs.exists()


def test_drafts_are_reviewed_when_the_setting_says_so(review_bot, github, deliver):
    flow = review_bot(review_drafts=True)
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7, draft=True)))

    assert run.status == "succeeded", run.error
    assert len(github.comments_on(REPO, 7)) == 1


def big_change() -> list[dict]:
    """40 files, 3,000 changed lines: 39 files of 60 lines and one of 660."""
    files = []
    for n, size in enumerate([60] * 39 + [660]):
        lines = [
            f"+    total_{i} = compute(values[{i}], weight={n}) + offset_{i}" for i in range(size)
        ]
        files.append(
            {
                "filename": f"src/pkg_{n:02d}/module.py",
                "status": "added",
                "additions": size,
                "deletions": 0,
                "changes": size,
                "patch": f"@@ -0,0 +1,{size} @@\n" + "\n".join(lines),
            }
        )
    return files


def test_a_3000_line_change_over_40_files_is_reviewed_in_parts_that_fit_the_context(
    review_bot, github, llm, deliver
):
    flow = review_bot(context_size=2048)
    files = big_change()
    assert sum(f["changes"] for f in files) == 3000
    github.add_pull(REPO, 7, title="Handle empty bodies", files=files)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    body = comment["body"]
    assert "40 of 40 files reviewed" in body
    for f in files:
        assert body.count(f"<summary>`{f['filename']}` (added, +{f['changes']} −0)") == 1
    parts = [int(n) for n in re.findall(r"_Reviewed in (\d+) parts\._", body)]
    assert parts == [2] * 39 + [5]
    assert (
        "### Partly reviewed\n\n- `src/pkg_39/module.py`: reviewed the first 186 of 660 changed "
        "lines (5 parts of the model's context)\n"
    ) in body
    assert "Review errors" not in body
    assert "### Summary\n\nHandles requests without a JSON body and adds a lookup query.\n" in body
    # One call per part and one roll-up; each prompt fits the fake model's 2,048-token context.
    assert len(llm.chats) == sum(parts) + 1
    assert max(sum(len(m["content"]) for m in c["messages"]) for c in llm.chats) <= 2048 * 4


def test_an_empty_pull_request_is_reported_without_asking_the_model(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[])

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"] == (
        "## Code review of #7 “Handle empty bodies”\n\n"
        "Commit `4f2a9c1` · pull request opened · 0 of 0 files reviewed\n\n"
        "This pull request changes no files: there is nothing to review.\n\n"
        "<sub>Flowbuilder Code Review Bot · comment `/review` to review again</sub>"
        f"\n\n{MARKER}"
    )
    assert llm.chats == []


def test_a_model_failing_once_is_retried_and_the_review_is_complete(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    llm.fail_next(500, {"error": {"message": "model is loading", "type": "server_error"}})

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"] == EXPECTED_REVIEW
    assert len(llm.chats) == 3
    assert log_of(run, "warning") == [
        "review: The LLM server at 127.0.0.1 had a server error (500) for /chat/completions: "
        "model is loading. Retrying in 0.0 s (attempt 2 of 3)."
    ]


def test_a_model_failure_on_one_file_is_noted_and_the_other_files_are_reviewed(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    other = dict(FILES[0], filename="src/other.py")
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[FILES[0], other])

    def respond(messages):
        if "`src/other.py`" in messages[-1]["content"]:
            return Answer(
                400, {"error": {"message": "prompt rejected by the safety filter", "code": None}}
            )
        return review_answer(messages)

    llm.respond = respond

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded_with_errors", run.error  # one file failed
    [comment] = github.comments_on(REPO, 7)
    error = (
        "The LLM server at 127.0.0.1 answered 400 Bad Request for /chat/completions: "
        "prompt rejected by the safety filter."
    )
    assert "1 of 2 files reviewed" in comment["body"]
    assert f"### Review errors\n\n- `src/other.py`: the model failed: {error}\n" in comment["body"]
    assert "<summary>`src/app.py` (modified, +2 −1): 1 potential issue</summary>" in comment["body"]
    assert log_of(run, "error") == [f"review: The model failed on src/other.py: {error}"]


TOKEN_HINT = (
    "The GitHub connection's token needs read access to the repository's contents and pull "
    "requests, and write access to its pull requests and issues (to comment)."
)


def test_github_refusing_the_files_takes_the_error_path_and_the_comment_says_why(
    review_bot, github, llm, deliver
):
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)
    github.fail_next(
        403,
        {"message": "Resource not accessible by personal access token"},
        headers={"X-Accepted-GitHub-Permissions": "pull_requests=read"},
        path=rf"/repos/{REPO}/pulls/7/files",
    )

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    explanation = (
        f"Could not list the changed files of {REPO}#7: GitHub says this token lacks the "
        f"pull_requests: read permission. {TOKEN_HINT}"
    )
    assert run.status == "succeeded_with_errors"
    assert explanation in steps_of(run)["plan"].error
    assert log_of(run, "error") == [f"plan: {explanation}"]
    [comment] = github.comments_on(REPO, 7)
    assert comment["body"] == (
        "## Code review of #7 “Handle empty bodies”\n\n"
        f"⚠️ The review could not start: {explanation}\n\n{MARKER}"
    )
    assert llm.chats == []


def test_a_token_that_cannot_comment_fails_the_run_with_the_reason_in_the_log(
    review_bot, github, github_connection, deliver
):
    github.add_token("ghp_readOnlyToken000000000000000000", "flowbot", {"pull_requests": "read"})
    github_connection.set_secrets({"token": "ghp_readOnlyToken000000000000000000"})
    github_connection.save()
    flow = review_bot()
    github.add_pull(REPO, 7, title="Handle empty bodies", files=FILES)

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    refusal = "GitHub says this token lacks the issues: write or pull_requests: write permission."
    assert run.status == "failed"
    assert log_of(run, "error") == [
        f"plan: Could not write the review comment on {REPO}#7: {refusal} {TOKEN_HINT}",
        f"report_failure: Could not report the failure on {REPO}#7: {refusal}",
    ]
    assert f"Could not report the failure on {REPO}#7: {refusal}" in run.error
    assert github.comments_on(REPO, 7) == []


def test_the_settings_reach_the_model_and_limit_the_review(review_bot, github, llm, deliver):
    flow = review_bot(
        model="llama3",
        language="French",
        tone="friendly",
        max_files=1,
        ignore_globs="docs/*, *.lock",
    )
    other = dict(FILES[0], filename="src/other.py")
    github.add_pull(REPO, 7, title="Handle empty bodies", files=[FILES[0], other, FILES[2]])

    run = run_of(deliver(flow, "pull_request", pr_event("opened", 7)))

    assert run.status == "succeeded", run.error
    [comment] = github.comments_on(REPO, 7)
    assert (
        "Commit `4f2a9c1` · pull request opened · 1 of 3 files reviewed · model `llama3`"
        in (comment["body"])
    )
    assert (
        "### Not reviewed\n\n- `src/other.py`: over the limit of 1 files\n"
        "- `docs/logo.png`: ignored by the pattern `docs/*`\n"
    ) in comment["body"]
    system = llm.chats[0]["messages"][0]
    assert system == {
        "role": "system",
        "content": "You are an experienced software engineer reviewing pull request #7 “Handle "
        f"empty bodies” in {REPO}. Write in French; be friendly.",
    }
    assert {c["model"] for c in llm.chats} == {"llama3"}
