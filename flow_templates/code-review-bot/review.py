"""Review a pull request file by file with the LLM and keep one comment on it up to date.

1. A placeholder comment appears at once (on later runs the existing comment is edited instead).
2. The per-file patches are fetched; lock files, generated and vendored files (ignore_globs),
   binaries and deleted files are skipped, each listed with its reason.
3. Each patch is numbered with the new file's line numbers and cut into parts that fit the
   model's context; every part gets one LLM call answering in JSON (potential issues with lines,
   and a summary). A file too big for MAX_PARTS_PER_FILE parts is reviewed in part and listed so.
4. One roll-up call writes the overall summary, risks first; the comment is edited into the review.
An LLM failure on one file is logged and noted in the comment; the other files go on.
"""

import fnmatch
import json
import re
import time

# The comment is found again by this marker (github.comment.upsert hides it in the comment).
MARKER = "code-review"
TITLE = "Code review"

# Token arithmetic: code is about 3 characters per token; leave room for instructions and answer.
CHARS_PER_TOKEN = 3
PROMPT_TOKENS = 500
ANSWER_TOKENS = 700
MIN_PART_CHARS = 1500
MAX_PARTS_PER_FILE = 5
MAX_LINE_CHARS = 400
MAX_ROLLUP_LINE = 300
# Stop starting new LLM calls before the step's time limit ("limits": {"timeout_s": 300}).
TIME_BUDGET_S = 240
# GitHub refuses comments over 65,536 characters.
MAX_COMMENT_CHARS = 60000

SEVERITIES = ("high", "medium", "low")
SEVERITY_ICONS = {"high": "🔴", "medium": "🟠", "low": "🟡"}
DEFAULT_IGNORE = [
    "*.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.sum",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.snap",
    "*.svg",
    "*_pb2.py",
    "*.pb.go",
    "*.generated.*",
    "vendor/*",
    "third_party/*",
    "node_modules/*",
    "dist/*",
]


TOKEN_HINT = (
    "The GitHub connection's token needs read access to the repository's contents and pull "
    "requests, and write access to its pull requests and issues (to comment)."
)


class ReviewFailure(Exception):
    """The review cannot go on; the message says why and what to check."""


def main(event, ctx):
    decision = ctx.steps.get("check") or {}
    if not decision.get("review"):
        return {"skipped": decision.get("reason", "no review was requested")}
    cfg = config(ctx.settings)
    repo, number = decision["repo"], decision["number"]
    started = time.monotonic()

    pr = (event.get("payload") or {}).get("pull_request")
    if not pr:
        pr = github(ctx, "github.pr.get", {"repo": repo, "number": number}, "read pull request")
    head = (pr.get("head") or {}).get("sha", "")
    title = f"{TITLE} of #{number} “{pr.get('title', '')}”"

    existing = github(
        ctx,
        "github.comment.find",
        {"repo": repo, "number": number, "marker": MARKER},
        "look for the review comment on",
    )
    if existing is None:
        placeholder = (
            f"## {title}\n\n⏳ Reviewing the changes of commit `{head[:7]}`; this may take a few "
            "minutes. This comment will be updated with the review."
        )
        upsert(ctx, repo, number, placeholder)

    try:
        files = github(
            ctx, "github.pr.files", {"repo": repo, "number": number}, "list the changed files of"
        )
    except ReviewFailure as exc:
        upsert(ctx, repo, number, f"## {title}\n\n⚠️ The review could not start: {exc}")
        raise

    review = Review(cfg, repo, pr, started)
    review.plan(files)
    for entry in review.to_review:
        review.review_file(ctx, entry)
    review.roll_up(ctx)
    body = review.render(title, decision.get("reason", ""))
    comment = upsert(ctx, repo, number, body)
    ctx.info(
        f"Review posted: {len(review.reviewed)} files reviewed, {len(review.skipped)} skipped, "
        f"{len(review.failed)} failed, {review.issue_count()} potential issues."
    )
    if review.to_review and not review.reviewed:
        raise ReviewFailure(
            f"The model failed on every file ({len(review.failed)}); see the errors above."
        )
    return {
        "comment_id": comment.get("id"),
        "comment_url": comment.get("html_url", ""),
        "reviewed": [f["path"] for f in review.reviewed],
        "skipped": [{"file": path, "reason": why} for path, why in review.skipped],
        "partial": [{"file": f["path"], "note": f["truncated"]} for f in review.partial()],
        "failed": [{"file": path, "error": error} for path, error in review.failed],
        "issues": review.issue_count(),
    }


# ---- settings ---------------------------------------------------------------------------------


class Config:
    def __init__(self, settings):
        self.model = text_setting(settings, "model", "")
        self.context_size = int_setting(settings, "context_size", 8192)
        self.max_files = int_setting(settings, "max_files", 50)
        self.max_issues = int_setting(settings, "max_issues", 3)
        self.ignore = list_setting(settings, "ignore_globs", DEFAULT_IGNORE)
        self.language = text_setting(settings, "language", "English")
        self.tone = text_setting(settings, "tone", "constructive and concise")
        self.trigger_phrase = text_setting(settings, "trigger_phrase", "")
        usable = self.context_size - PROMPT_TOKENS - ANSWER_TOKENS
        self.part_chars = max(MIN_PART_CHARS, usable * CHARS_PER_TOKEN)


def config(settings):
    return Config(settings or {})


def text_setting(settings, name, default):
    value = settings.get(name)
    return default if value in (None, "") else str(value).strip()


def int_setting(settings, name, default):
    try:
        value = int(settings.get(name))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def list_setting(settings, name, default):
    value = settings.get(name)
    if value is None:
        return list(default)
    if isinstance(value, str):
        value = re.split(r"[,\n]", value)
    return [str(v).strip() for v in value if str(v).strip()]


# ---- GitHub -----------------------------------------------------------------------------------


def github(ctx, capability, payload, doing):
    try:
        return ctx.call(capability, payload)
    except ctx.CapabilityError as exc:
        message = f"Could not {doing} {payload.get('repo')}#{payload.get('number')}: {exc}"
        if not getattr(exc, "retryable", False):
            message += f" {TOKEN_HINT}"
        ctx.error(message)
        raise ReviewFailure(message) from exc


def upsert(ctx, repo, number, body):
    result = github(
        ctx,
        "github.comment.upsert",
        {"repo": repo, "number": number, "marker": MARKER, "body": body},
        "write the review comment on",
    )
    return result.get("comment") or {}


# ---- files and patches ------------------------------------------------------------------------


def ignored_by(path, patterns):
    """The first pattern that matches: with a '/', against the whole path; else the file name."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        bare = pattern[3:] if pattern.startswith("**/") else pattern
        if "/" in bare:
            if fnmatch.fnmatch(path, bare) or fnmatch.fnmatch(path, "*/" + bare):
                return pattern
        elif fnmatch.fnmatch(name, bare):
            return pattern
    return None


HUNK_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def number_patch(patch):
    """The patch's hunks as lists of lines prefixed by the new file's line numbers.

    Returns (hunks, cut) where cut counts the lines shortened to MAX_LINE_CHARS.
    """
    hunks, cut = [], 0
    current, new_line = None, 0
    for raw in patch.splitlines():
        header = HUNK_HEADER.match(raw)
        if header:
            new_line = int(header.group(1))
            current = [raw]
            hunks.append(current)
            continue
        if current is None:
            continue
        if len(raw) > MAX_LINE_CHARS:
            raw = raw[:MAX_LINE_CHARS] + " …[line cut]"
            cut += 1
        sign, text = raw[:1], raw[1:]
        if sign == "-":
            current.append(f"{'':>5} -{text}")
        elif sign in ("+", " "):
            current.append(f"{new_line:>5} {sign}{text}")
            new_line += 1
        else:
            current.append(raw)
    return hunks, cut


def split_patch(patch, part_chars):
    """Cut a numbered patch into parts of at most part_chars, at hunk boundaries when possible."""
    hunks, cut = number_patch(patch)
    pieces = []
    for hunk in hunks:
        pieces.extend(split_hunk(hunk, part_chars))
    parts, current, size = [], [], 0
    for piece in pieces:
        piece_size = sum(len(line) + 1 for line in piece)
        if current and size + piece_size > part_chars:
            parts.append("\n".join(current))
            current, size = [], 0
        current.extend(piece)
        size += piece_size
    if current:
        parts.append("\n".join(current))
    return parts, cut


def split_hunk(hunk, part_chars):
    header, body = hunk[0], hunk[1:]
    pieces, current, size = [], [header], len(header) + 1
    for line in body:
        if len(current) > 1 and size + len(line) + 1 > part_chars:
            pieces.append(current)
            current = [header + " (continued)"]
            size = len(current[0]) + 1
        current.append(line)
        size += len(line) + 1
    pieces.append(current)
    return pieces


def lines_shown(part):
    """The new file's line numbers a part shows: a line the model names must be one of them."""
    return {int(line[:5]) for line in part.splitlines() if line[:5].strip().isdigit()}


def changed_lines(text):
    return sum(1 for line in text.splitlines() if line[6:7] in ("+", "-"))


# ---- the model's answers ----------------------------------------------------------------------


def parse_json(text):
    """The JSON object in an answer, tolerating code fences and prose around it; None if absent."""
    text = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def clean(text):
    return " ".join(str(text or "").split())


def parse_issues(value, shown):
    issues = []
    for item in value.get("issues") or []:
        if isinstance(item, str):
            item = {"message": item}
        if not isinstance(item, dict) or not clean(item.get("message")):
            continue
        try:
            line = int(item.get("line"))
        except (TypeError, ValueError):
            line = None
        severity = str(item.get("severity") or "").lower()
        issues.append(
            {
                # A line the patch does not show would link to the wrong place: drop it.
                "line": line if line in shown else None,
                "severity": severity if severity in SEVERITIES else "medium",
                "message": clean(item["message"]),
            }
        )
    return issues


def by_severity(issue):
    return SEVERITIES.index(issue["severity"])


def ask(ctx, cfg, system, prompt):
    payload = {
        "system": system,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.2,
        "max_tokens": ANSWER_TOKENS,
    }
    if cfg.model:
        payload["model"] = cfg.model
    return ctx.call("llm.chat", payload).get("content") or ""


# ---- the review -------------------------------------------------------------------------------


class Review:
    def __init__(self, cfg, repo, pr, started):
        self.cfg = cfg
        self.repo = repo
        self.pr = pr
        self.started = started
        self.to_review = []
        self.reviewed = []
        self.skipped = []
        self.failed = []
        self.risks = []
        self.summary = ""
        self.rollup_error = ""
        self.system = (
            f"You are an experienced software engineer reviewing pull request "
            f"#{pr.get('number')} “{pr.get('title', '')}” in {repo}. "
            f"Write in {cfg.language}; be {cfg.tone}."
        )

    def plan(self, files):
        for f in files:
            path = f.get("filename", "")
            status = f.get("status", "modified")
            pattern = ignored_by(path, self.cfg.ignore)
            if pattern:
                self.skipped.append((path, f"ignored by the pattern `{pattern}`"))
            elif status == "removed":
                self.skipped.append((path, "deleted"))
            elif not f.get("patch"):
                if status == "renamed" and not f.get("changes"):
                    why = f"renamed from `{f.get('previous_filename', '?')}` without changes"
                else:
                    why = "binary, or too large for GitHub to show a diff"
                self.skipped.append((path, why))
            elif len(self.to_review) >= self.cfg.max_files:
                self.skipped.append((path, f"over the limit of {self.cfg.max_files} files"))
            else:
                self.to_review.append(f)

    def review_file(self, ctx, f):
        path = f["filename"]
        if time.monotonic() - self.started > TIME_BUDGET_S:
            self.skipped.append((path, "not reached: the review ran out of time"))
            return
        parts, cut = split_patch(f["patch"], self.cfg.part_chars)
        total = sum(changed_lines(p) for p in parts)
        kept = parts[:MAX_PARTS_PER_FILE]
        entry = {
            "path": path,
            "status": f.get("status", "modified"),
            "previous": f.get("previous_filename", ""),
            "additions": f.get("additions", 0),
            "deletions": f.get("deletions", 0),
            "issues": [],
            "summaries": [],
            "parts": len(kept),
            "errors": [],
            "truncated": "",
        }
        if len(kept) < len(parts):
            reviewed = sum(changed_lines(p) for p in kept)
            entry["truncated"] = (
                f"reviewed the first {reviewed} of {total} changed lines "
                f"({MAX_PARTS_PER_FILE} parts of the model's context)"
            )
        elif cut:
            entry["truncated"] = (
                f"{cut} very long lines were shortened to {MAX_LINE_CHARS} characters"
            )
        for index, part in enumerate(kept, 1):
            label = path if len(kept) == 1 else f"{path} (part {index} of {len(kept)})"
            try:
                answer = ask(
                    ctx, self.cfg, self.system, self.file_prompt(f, part, index, len(kept))
                )
            except ctx.CapabilityError as exc:
                ctx.error(f"The model failed on {label}: {exc}")
                part_name = f"part {index} of {len(kept)}" if len(kept) > 1 else ""
                entry["errors"].append((part_name, str(exc)))
                continue
            value = parse_json(answer)
            if value is None:
                ctx.warn(f"The model's answer on {label} was not JSON; kept as text.")
                entry["summaries"].append(clean(answer))
                continue
            for issue in parse_issues(value, lines_shown(part)):
                if issue not in entry["issues"]:
                    entry["issues"].append(issue)
            if clean(value.get("summary")):
                entry["summaries"].append(clean(value.get("summary")))
        entry["issues"] = sorted(entry["issues"], key=by_severity)[: self.cfg.max_issues]
        if len(entry["errors"]) == len(kept):
            self.failed.append((path, entry["errors"][0][1]))
        else:
            self.reviewed.append(entry)
        ctx.info(f"Reviewed {path}: {len(entry['issues'])} potential issues.")

    def file_prompt(self, f, part, index, count):
        if f.get("previous_filename"):
            what = f"`{f['filename']}` (renamed from `{f['previous_filename']}`)"
        else:
            what = f"`{f['filename']}` ({f.get('status', 'modified')})"
        if count > 1:
            what += f", part {index} of {count}"
        return (
            f"Review the changes to {what}.\n"
            "Each line shows the new file's line number, then + (added), - (removed) or a space "
            "(unchanged context).\n\n"
            f"{part}\n\n"
            "Answer with one JSON object and nothing else:\n"
            '{"issues": [{"line": <new line number or null>, "severity": "high" | "medium" | '
            '"low", "message": "<one sentence>"}], "summary": "<one or two sentences on what '
            'changed>"}\n'
            f"List at most {self.cfg.max_issues} potential issues (bugs, security, data loss, "
            "performance, missing tests), most severe first; an empty list when there are none."
        )

    def roll_up(self, ctx):
        if not self.reviewed:
            return
        # The roll-up must fit the context too: files with the most severe issues come first,
        # each cut to MAX_ROLLUP_LINE; what does not fit is counted, not silently dropped.
        ranked = sorted(
            self.reviewed, key=lambda e: min([by_severity(i) for i in e["issues"]] or [3])
        )
        lines, used = [], 0
        for entry in ranked:
            issues = "; ".join(
                f"[{i['severity']}]"
                + (f" line {i['line']}" if i["line"] else "")
                + f" {i['message']}"
                for i in entry["issues"]
            )
            text = f"- {entry['path']}: {' '.join(entry['summaries'])}"
            if issues:
                text += f" Potential issues: {issues}"
            text = text[:MAX_ROLLUP_LINE]
            if used + len(text) > self.cfg.part_chars:
                lines.append(f"- ... and {len(ranked) - len(lines)} more files.")
                break
            lines.append(text)
            used += len(text) + 1
        description = clean(self.pr.get("body"))[:500] or "(none)"
        prompt = (
            f"Description of the pull request: {description}\n\n"
            "Reviews of its files:\n" + "\n".join(lines) + "\n\n"
            "Answer with one JSON object and nothing else:\n"
            '{"risks": ["<a risk of merging this pull request>"], "summary": "<one paragraph '
            'on what the pull request does>"}\n'
            "List at most 5 risks, most severe first; an empty list when there are none."
        )
        try:
            answer = ask(ctx, self.cfg, self.system, prompt)
        except ctx.CapabilityError as exc:
            ctx.error(f"The model failed on the overall summary: {exc}")
            self.rollup_error = str(exc)
            self.risks = self.top_issues()
            return
        value = parse_json(answer)
        if value is None:
            ctx.warn("The model's overall summary was not JSON; kept as text.")
            self.summary = clean(answer)
            self.risks = self.top_issues()
            return
        self.summary = clean(value.get("summary"))
        risks = value.get("risks") or []
        if isinstance(risks, str):
            risks = [risks]
        self.risks = [clean(r) for r in risks if clean(r)][:5]

    def top_issues(self):
        issues = [(i, e["path"]) for e in self.reviewed for i in e["issues"]]
        issues.sort(key=lambda pair: by_severity(pair[0]))
        return [f"`{path}`: {i['message']}" for i, path in issues if i["severity"] == "high"][:5]

    def issue_count(self):
        return sum(len(e["issues"]) for e in self.reviewed)

    def partial(self):
        return [e for e in self.reviewed if e["truncated"]]

    # ---- the comment ----

    def link(self, path, line):
        base = (self.pr.get("html_url") or "").rsplit("/pull/", 1)[0]
        sha = (self.pr.get("head") or {}).get("sha", "")
        if not (base and sha):
            return f"line {line}"
        return f"[line {line}]({base}/blob/{sha}/{path}#L{line})"

    def render(self, title, reason, compact=False):
        head = (self.pr.get("head") or {}).get("sha", "")[:7]
        total = len(self.reviewed) + len(self.skipped) + len(self.failed)
        out = [f"## {title}", ""]
        facts = [f"Commit `{head}`" if head else "", reason]
        facts.append(f"{len(self.reviewed)} of {total} files reviewed")
        if self.cfg.model:
            facts.append(f"model `{self.cfg.model}`")
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
            if self.summary:
                out.append(self.summary)
            elif self.rollup_error:
                out.append(f"The overall summary could not be written: {self.rollup_error}")
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
            out += [f"- `{path}`: the model failed: {error}" for path, error in self.failed]
            out += [
                f"- `{path}` ({part}): the model failed: {error}"
                for path, part, error in part_errors
            ]
            out.append("")
        footer = "<sub>Flowbuilder Code Review Bot"
        if self.cfg.trigger_phrase:
            footer += f" · comment `{self.cfg.trigger_phrase}` to review again"
        out.append(footer + "</sub>")
        body = "\n".join(out)
        if len(body) > MAX_COMMENT_CHARS and not compact:
            return self.render(title, reason, compact=True)
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
            failed = ", ".join(part for part, _ in entry["errors"])
            out += [f"⚠️ Not reviewed: {failed} (the model failed, see Review errors).", ""]
        out += ["</details>", ""]
        return out
