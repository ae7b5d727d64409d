"""Daily Digest: a scheduled run gathers the day's issues and pull requests, summarises them,
and posts to Slack (or to Discord once the user swaps the last step)."""

from __future__ import annotations

import pytest

from flows.engine import start_run
from tests.templates.support import REPO, connect, log_of

ITEMS = [
    {
        "number": 5,
        "title": "Crash on empty body",
        "state": "open",
        "user": {"login": "ada"},
        "html_url": f"https://github.com/{REPO}/issues/5",
        "updated_at": "2024-05-06T07:00:00Z",
    },
    {
        "number": 6,
        "title": "Handle empty bodies",
        "state": "closed",
        "user": {"login": "bob"},
        "html_url": f"https://github.com/{REPO}/pull/6",
        "updated_at": "2024-05-05T09:30:00Z",
        "pull_request": {"merged_at": "2024-05-05T09:30:00Z"},
    },
    {
        "number": 2,
        "title": "Old question",
        "state": "open",
        "user": {"login": "cy"},
        "html_url": f"https://github.com/{REPO}/issues/2",
        "updated_at": "2024-05-01T10:00:00Z",
    },
]
DIGEST = "Bob's fix for empty bodies was merged; Ada reported a crash that needs a look."


@pytest.fixture
def digest(user, from_template, github, llm_connection, llm):
    github.listing = ITEMS
    llm.replies.append(DIGEST)
    connect(user, "http", "GitHub API", {}, {"header:Authorization": f"Bearer {github.token}"})

    def make(post_step: dict | None = None):
        def point_at_fakes(document):
            document["connections"]["http"]["limits"] = {"allowed_hosts": ["127.0.0.1"]}
            if post_step:
                document["steps"][-1] = post_step
                document["connections"]["discord"] = {"service": "discord", "connection": None}
                del document["connections"]["slack"]
                document["connections"]["discord"]["connection"] = user.connections.get(
                    service="discord"
                ).pk

        return from_template(
            "daily-digest",
            {
                "github_repo": REPO,
                "feed_url": f"{github.url}/repos/{{repo}}/issues?state=all&since={{since}}",
            },
            fakes=point_at_fakes,
        )

    return make


def test_the_schedule_posts_a_digest_of_the_last_day_to_slack(digest, user, slack, github, llm):
    connect(user, "slack", "Team Slack", {}, {"webhook_url": slack.webhook_url})
    flow = digest()

    run, created = start_run(
        flow, trigger="schedule", event={"scheduled_at": "2024-05-06T08:00:00Z"}
    )

    run.refresh_from_db()
    assert (created, run.status) == (True, "succeeded")
    assert slack.messages == [
        {
            "via": "webhook",
            "text": f"*Daily digest for {REPO}, Monday 06 May 2024*\n{DIGEST}\n"
            f"• Issue #5 <https://github.com/{REPO}/issues/5|Crash on empty body> (open, by ada)\n"
            f"• PR #6 <https://github.com/{REPO}/pull/6|Handle empty bodies> (merged, by bob)",
        }
    ]
    [feed] = github.requests_to("GET", rf"/repos/{REPO}/issues")
    assert feed.query == {"state": "all", "since": "2024-05-05T08:00:00Z"}
    assert feed.headers["authorization"] == f"Bearer {github.token}"
    assert (
        "- PR #6 “Handle empty bodies” (merged, by bob)" in llm.chats[0]["messages"][0]["content"]
    )
    assert log_of(run, "info")[0] == "digest: 2 items updated since 2024-05-05T08:00:00Z."


def test_a_quiet_day_is_posted_without_asking_the_model(digest, user, slack, github, llm):
    connect(user, "slack", "Team Slack", {}, {"webhook_url": slack.webhook_url})
    github.listing = []
    flow = digest()

    run, _ = start_run(flow, trigger="schedule", event={"scheduled_at": "2024-05-06T08:00:00Z"})

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert [m["text"] for m in slack.messages] == [
        f"*Daily digest for {REPO}, Monday 06 May 2024*\nNothing new in the last 24 hours."
    ]
    assert llm.chats == []


def test_the_digest_goes_to_discord_when_the_post_step_is_swapped(digest, user, discord):
    connect(user, "discord", "Team Discord", {}, {"webhook_url": discord.webhook_url})
    flow = digest(
        {
            "id": "post",
            "kind": "discord.post",
            "config": {"content": "{{ steps.digest.discord_text }}"},
        }
    )

    run, _ = start_run(flow, trigger="schedule", event={"scheduled_at": "2024-05-06T08:00:00Z"})

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert [m["content"] for m in discord.messages] == [
        f"**Daily digest for {REPO}, Monday 06 May 2024**\n{DIGEST}\n"
        f"• Issue #5 [Crash on empty body](<https://github.com/{REPO}/issues/5>) (open, by ada)\n"
        f"• PR #6 [Handle empty bodies](<https://github.com/{REPO}/pull/6>) (merged, by bob)"
    ]
