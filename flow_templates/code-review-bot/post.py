"""Edit the review comment into the review: risks first, the summary, each file, and an honest
list of what was not reviewed and why.

Reads the plan, the loop's results (a file the loop failed on holds `{error, index}`) and the
roll-up (its output, or `{error}` when it failed for good and its error path led here).
"""

from flowbuilder import CapabilityError

MARKER = "code-review"
SEVERITIES = ("high", "medium", "low")
SEVERITY_ICONS = {"high": "🔴", "medium": "🟠", "low": "🟡"}
# GitHub refuses comments over 65,536 characters.
MAX_COMMENT_CHARS = 60000

TOKEN_HINT = (
    "The GitHub connection's token needs read access to the repository's contents and pull "
    "requests, and write access to its pull requests and issues (to comment)."
)


class ReviewFailure(CapabilityError):
    """The review comment could not be written; the message says why and what to check."""


def main(event, ctx):
    plan = ctx.steps["plan"]
    rollup = ctx.steps.get("rollup") or {}
    review = Review(plan, ctx.steps["files"], rollup)
    trigger_phrase = str(ctx.settings.get("trigger_phrase") or "").strip()
    body = review.render(trigger_phrase)
    repo, number = plan["repo"], plan["number"]
    try:
        result = ctx.call(
            "github.comment.upsert",
            {"repo": repo, "number": number, "marker": MARKER, "body": body},
        )
    except CapabilityError as exc:
        message = f"Could not write the review comment on {repo}#{number}: {exc}"
        if not exc.retryable:
            message += f" {TOKEN_HINT}"
        ctx.error(message)
        raise ReviewFailure(message, exc.retryable) from None
    comment = result.get("comment") or {}
    ctx.info(
        f"Review posted: {len(review.reviewed)} files reviewed, {len(review.skipped)} skipped, "
        f"{len(review.failed)} failed, {review.issue_count()} potential issues."
    )
    return {
        "comment_id": comment.get("id"),
        "comment_url": comment.get("html_url", ""),
        "reviewed": [e["path"] for e in review.reviewed],
        "skipped": [{"file": path, "reason": why} for path, why in review.skipped],
        "partial": [{"file": e["path"], "note": e["truncated"]} for e in review.partial()],
        "failed": [{"file": path, "error": error} for path, error in review.failed],
        "issues": review.issue_count(),
    }


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


class Review:
    def __init__(self, plan, results, rollup):
        self.plan = plan
        self.skipped = [tuple(pair) for pair in plan["skipped"]]
        self.reviewed, self.failed = [], []
        for item, result in zip(plan["items"], results, strict=True):
            if result and not result.get("error"):
                self.reviewed.append(result)
            else:
                why = failure_reason((result or {}).get("error")) or "no result"
                self.failed.append((item["path"], why))
        self.summary = rollup.get("summary") or ""
        self.rollup_error = failure_reason(rollup.get("error"))
        risks = rollup.get("risks")
        self.risks = self.top_issues() if risks is None or self.rollup_error else risks

    def top_issues(self):
        issues = [(i, e["path"]) for e in self.reviewed for i in e["issues"]]
        issues.sort(key=lambda pair: SEVERITIES.index(pair[0]["severity"]))
        return [f"`{path}`: {i['message']}" for i, path in issues if i["severity"] == "high"][:5]

    def issue_count(self):
        return sum(len(e["issues"]) for e in self.reviewed)

    def partial(self):
        return [e for e in self.reviewed if e["truncated"]]

    def link(self, path, line):
        base = self.plan["html_url"].rsplit("/pull/", 1)[0]
        sha = self.plan["head"]
        if not (base and sha):
            return f"line {line}"
        return f"[line {line}]({base}/blob/{sha}/{path}#L{line})"

    def render(self, trigger_phrase, compact=False):
        head = self.plan["head"][:7]
        total = len(self.reviewed) + len(self.skipped) + len(self.failed)
        out = [f"## {self.plan['title']}", ""]
        facts = [f"Commit `{head}`" if head else "", self.plan["reason"]]
        facts.append(f"{len(self.reviewed)} of {total} files reviewed")
        if self.plan["model"]:
            facts.append(f"model `{self.plan['model']}`")
        out += [" · ".join(f for f in facts if f), ""]
        if total == 0:
            out += ["This pull request changes no files: there is nothing to review.", ""]
        if self.reviewed:
            out += ["### Risks", ""]
            if self.risks:
                out += [f"- {risk}" for risk in self.risks]
            else:
                out.append("No significant risks found.")
            out += ["", "### Summary", ""]
            if self.rollup_error:
                out.append(f"The overall summary could not be written: {self.rollup_error}")
            elif self.summary:
                out.append(self.summary)
            out += ["", "### Files", ""]
            for entry in self.reviewed:
                out += self.render_file(entry, compact)
        if self.skipped:
            out += ["### Not reviewed", ""]
            out += [f"- `{path}`: {why}" for path, why in self.skipped]
            out.append("")
        partial = self.partial()
        if partial:
            out += ["### Partly reviewed", ""]
            out += [f"- `{e['path']}`: {e['truncated']}" for e in partial]
            out.append("")
        part_errors = [
            (e["path"], part, error) for e in self.reviewed for part, error in e["errors"]
        ]
        if self.failed or part_errors:
            out += ["### Review errors", ""]
            out += [f"- `{path}`: {error}" for path, error in self.failed]
            out += [f"- `{path}` ({part}): {error}" for path, part, error in part_errors]
            out.append("")
        footer = "<sub>Flowbuilder Code Review Bot"
        if trigger_phrase:
            footer += f" · comment `{trigger_phrase}` to review again"
        out.append(footer + "</sub>")
        body = "\n".join(out)
        if len(body) > MAX_COMMENT_CHARS and not compact:
            return self.render(trigger_phrase, compact=True)
        if len(body) > MAX_COMMENT_CHARS:
            body = body[:MAX_COMMENT_CHARS] + "\n\n… (cut at GitHub's comment size limit)"
        return body

    def render_file(self, entry, compact):
        name = f"`{entry['path']}`"
        if entry["previous"]:
            name = f"`{entry['previous']}` → {name}"
        counts = f"{entry['status']}, +{entry['additions']} −{entry['deletions']}"
        issues = entry["issues"]
        found = f"{len(issues)} potential issue{'s' if len(issues) != 1 else ''}"
        opening = "<details open>" if issues and not compact else "<details>"
        out = [opening, f"<summary>{name} ({counts}): {found}</summary>", ""]
        if not compact:
            for issue in issues:
                where = f"{self.link(entry['path'], issue['line'])}: " if issue["line"] else ""
                icon = SEVERITY_ICONS[issue["severity"]]
                out.append(f"- {icon} **{issue['severity']}** {where}{issue['message']}")
            if issues:
                out.append("")
            if entry["summaries"]:
                out += [f"**Changes:** {' '.join(entry['summaries'])}", ""]
        if entry["parts"] > 1:
            out += [f"_Reviewed in {entry['parts']} parts._", ""]
        if entry["errors"]:
            missing = ", ".join(part for part, _ in entry["errors"])
            out += [f"⚠️ Not reviewed: {missing} (see Review errors).", ""]
        out += ["</details>", ""]
        return out
