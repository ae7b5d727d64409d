"""Decide whether this GitHub event should start a review.

Reviews start when a pull request is opened, reopened, updated with new commits or marked ready
for review (drafts only when `review_drafts` is on), and when someone comments on a pull request
with a comment that has the trigger phrase as a command: a whole word at the start of one of its
lines. Every other event is skipped, with the reason in the run log.
"""

PR_ACTIONS = ("opened", "reopened", "synchronize", "ready_for_review")
# The hidden marker in the bot's own review comment.
MARKER = "<!-- flowbuilder:code-review -->"


def main(event, ctx):
    decision = decide(event.get("name", ""), event.get("payload") or {}, ctx.settings)
    if decision["review"]:
        ctx.info(f"Reviewing {decision['repo']}#{decision['number']}: {decision['reason']}")
    else:
        ctx.info(f"Skipped: {decision['reason']}")
    return decision


def decide(name, payload, settings):
    repo = (payload.get("repository") or {}).get("full_name", "")
    wanted = str(settings.get("github_repo") or "").strip()
    if wanted and repo.lower() != wanted.lower():
        return skip(f"the event comes from {repo or 'no repository'}, not {wanted}")
    action = payload.get("action", "")
    if name == "pull_request":
        return decide_pull_request(action, payload, repo, settings)
    if name == "issue_comment":
        return decide_comment(action, payload, repo, settings)
    return skip(f"'{name}' events do not start reviews")


def decide_pull_request(action, payload, repo, settings):
    pr = payload.get("pull_request") or {}
    number = pr.get("number") or payload.get("number")
    if action not in PR_ACTIONS:
        return skip(f"pull request #{number} was {action.replace('_', ' ')}")
    if pr.get("state") == "closed":
        return skip(f"pull request #{number} is closed")
    if pr.get("draft") and not is_on(settings.get("review_drafts")):
        return skip(f"pull request #{number} is a draft (turn on review_drafts to review drafts)")
    reason = {
        "opened": "pull request opened",
        "reopened": "pull request reopened",
        "synchronize": "new commits pushed",
        "ready_for_review": "pull request marked ready for review",
    }[action]
    return review(repo, number, reason, (pr.get("user") or {}).get("login", ""))


def decide_comment(action, payload, repo, settings):
    issue = payload.get("issue") or {}
    comment = payload.get("comment") or {}
    number = issue.get("number")
    author = (comment.get("user") or {}).get("login", "")
    body = comment.get("body") or ""
    if action != "created":
        return skip(f"a comment on #{number} was {action}")
    if "pull_request" not in issue:
        return skip(f"#{number} is an issue, not a pull request")
    bot_login = str(settings.get("bot_login") or "").strip()
    if MARKER in body or (bot_login and author.lower() == bot_login.lower()):
        return skip("the comment is the bot's own")
    phrase = str(settings.get("trigger_phrase") or "").strip()
    if not phrase:
        return skip("comments start no reviews (the trigger phrase is empty)")
    if not is_command(body, phrase):
        return skip(f"the comment on #{number} has no line starting with the command '{phrase}'")
    if issue.get("state") == "closed":
        return skip(f"pull request #{number} is closed")
    return review(repo, number, f"requested by @{author} in a comment", author)


def is_command(body, phrase):
    """Whether a line of the comment starts with the phrase as a whole word (any case):
    "/review" and "/review please" do, "/reviewers: @alice" and "> /review" (a quote) do not."""
    phrase = phrase.lower()
    for line in body.splitlines():
        line = line.strip().lower()
        after = line[len(phrase) : len(phrase) + 1]
        if line.startswith(phrase) and not (after.isalnum() or (after and after in "_-/")):
            return True
    return False


def review(repo, number, reason, requested_by):
    return {
        "review": True,
        "reason": reason,
        "repo": repo,
        "number": number,
        "requested_by": requested_by,
    }


def skip(reason):
    return {"review": False, "reason": reason}


def is_on(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
