"""Replace the "Reviewing…" placeholder with an honest comment when the review failed for good.

Reached along the error path of `plan` (the review could not start), of the loop `files` or of
`post` (the review could not be finished). The failed step's output is `{error, step,
retryable}`; the comment gives the error's message.
"""

from flowbuilder import CapabilityError

MARKER = "code-review"
TITLE = "Code review"


class ReviewFailure(CapabilityError):
    """Not even the failure could be reported; the message says why."""


def main(event, ctx):
    decision = ctx.steps["check"]
    repo, number = decision["repo"], decision["number"]
    plan, files, post = ctx.steps.get("plan"), ctx.steps.get("files"), ctx.steps.get("post")
    failed = next(s for s in (plan, files, post) if isinstance(s, dict) and "error" in s)
    payload = event.get("payload") or {}
    pr = payload.get("pull_request") or payload.get("issue") or {}
    title = f"{TITLE} of #{number} “{pr.get('title', '')}”"
    what = "could not start" if failed is plan else "could not be finished"
    body = f"## {title}\n\n⚠️ The review {what}: {failure_reason(failed['error'])}"
    try:
        ctx.call(
            "github.comment.upsert",
            {"repo": repo, "number": number, "marker": MARKER, "body": body},
        )
    except CapabilityError as exc:
        message = f"Could not report the failure on {repo}#{number}: {exc}"
        ctx.error(message)
        raise ReviewFailure(message, exc.retryable) from None
    ctx.info(f"The comment says the review {what}.")
    return {"reported": failed["step"], "error": failed["error"]}


def failure_reason(error):
    """The message of a failed step's error: the last line of a traceback, without the
    exception's name."""
    text = str(error or "").strip()
    if text.startswith("step '") and "': " in text:
        text = text.split("': ", 1)[1]
    if not text.startswith("Traceback (most recent call last):"):
        return text
    lines = text.splitlines()
    for index in range(len(lines) - 1, 0, -1):
        head, sep, rest = lines[index].partition(": ")
        if sep and head and not head[0].isspace() and head.replace(".", "").isidentifier():
            return "\n".join([rest, *lines[index + 1 :]]).strip()
    return lines[-1].strip()
