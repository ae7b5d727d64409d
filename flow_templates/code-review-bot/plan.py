"""Plan the review of a pull request: what to review, in which parts, and the placeholder comment.

1. A placeholder comment appears at once (on later runs the existing comment stays until the new
   review replaces it).
2. The per-file patches are fetched; lock files, generated and vendored files (ignore_globs),
   binaries, deleted files and files over max_files are skipped, each with its reason.
3. Each patch is numbered with the new file's line numbers and cut into parts that fit the
   model's context; each part becomes one prompt. A file too big for MAX_PARTS_PER_FILE parts is
   reviewed in part and listed so.
The loop `files` then reviews the returned items, several at once.
"""

import fnmatch
import re

from flowbuilder import CapabilityError

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
# The prompts travel in this step's output, whose limit flow.json raises to 16 MiB.
MAX_PROMPT_CHARS = 6_000_000

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


class ReviewFailure(CapabilityError):
    """The review cannot start; the message says why and what to check."""


def main(event, ctx):
    decision = ctx.steps.get("check") or {}
    repo, number = decision["repo"], decision["number"]
    settings = ctx.settings
    context = context_budget(ctx, settings)
    part_chars = max(MIN_PART_CHARS, (context - PROMPT_TOKENS - ANSWER_TOKENS) * CHARS_PER_TOKEN)

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
        github(
            ctx,
            "github.comment.upsert",
            {"repo": repo, "number": number, "marker": MARKER, "body": placeholder},
            "write the review comment on",
        )

    files = github(
        ctx, "github.pr.files", {"repo": repo, "number": number}, "list the changed files of"
    )
    skipped, items = plan_files(files, settings, part_chars, pr, repo)
    language = text_setting(settings, "language", "English")
    tone = text_setting(settings, "tone", "constructive and concise")
    return {
        "repo": repo,
        "number": number,
        "title": title,
        "head": head,
        "reason": decision.get("reason", ""),
        "html_url": pr.get("html_url") or "",
        "description": " ".join(str(pr.get("body") or "").split())[:500],
        "system": (
            f"You are an experienced software engineer reviewing pull request "
            f"#{pr.get('number')} “{pr.get('title', '')}” in {repo}. "
            f"Write in {language}; be {tone}."
        ),
        "model": text_setting(settings, "model", ""),
        "part_chars": part_chars,
        "skipped": skipped,
        "items": items,
    }


def plan_files(files, settings, part_chars, pr, repo):
    """(skipped [[path, why]], items to review), both in the pull request's file order."""
    max_files = int_setting(settings, "max_files", 50)
    max_issues = int_setting(settings, "max_issues", 3)
    patterns = list_setting(settings, "ignore_globs", DEFAULT_IGNORE)
    skipped, items, prompt_chars = [], [], 0
    for f in files:
        path = f.get("filename", "")
        status = f.get("status", "modified")
        pattern = ignored_by(path, patterns)
        if pattern:
            skipped.append([path, f"ignored by the pattern `{pattern}`"])
        elif status == "removed":
            skipped.append([path, "deleted"])
        elif not f.get("patch"):
            if status == "renamed" and not f.get("changes"):
                why = f"renamed from `{f.get('previous_filename', '?')}` without changes"
            else:
                why = "binary, or too large for GitHub to show a diff"
            skipped.append([path, why])
        elif len(items) >= max_files:
            skipped.append([path, f"over the limit of {max_files} files"])
        else:
            item = plan_file(f, part_chars, max_issues)
            size = sum(len(p["prompt"]) for p in item["parts"])
            if prompt_chars + size > MAX_PROMPT_CHARS:
                skipped.append([path, "not reached: the change is larger than one review takes"])
                continue
            prompt_chars += size
            items.append(item)
    return skipped, items


def plan_file(f, part_chars, max_issues):
    parts, cut = split_patch(f["patch"], part_chars)
    kept = parts[:MAX_PARTS_PER_FILE]
    truncated = ""
    if len(kept) < len(parts):
        reviewed = sum(changed_lines(p) for p in kept)
        total = sum(changed_lines(p) for p in parts)
        truncated = (
            f"reviewed the first {reviewed} of {total} changed lines "
            f"({MAX_PARTS_PER_FILE} parts of the model's context)"
        )
    elif cut:
        truncated = f"{cut} very long lines were shortened to {MAX_LINE_CHARS} characters"
    return {
        "path": f["filename"],
        "status": f.get("status", "modified"),
        "previous": f.get("previous_filename", ""),
        "additions": f.get("additions", 0),
        "deletions": f.get("deletions", 0),
        "truncated": truncated,
        "parts": [
            {
                "prompt": file_prompt(f, part, index, len(kept), max_issues),
                # A line the model names must be one the part shows, or its link would mislead.
                "lines": sorted(lines_shown(part)),
            }
            for index, part in enumerate(kept, 1)
        ],
    }


def file_prompt(f, part, index, count, max_issues):
    if f.get("previous_filename"):
        what = f"`{f['filename']}` (renamed from `{f['previous_filename']}`)"
    else:
        what = f"`{f['filename']}` ({f.get('status', 'modified')})"
    if count > 1:
        what += f", part {index} of {count}"
    # The instructions come before the patch: a prompt cut to fit a context loses its end.
    return (
        f"Review the changes to {what}.\n"
        "Answer with one JSON object and nothing else:\n"
        '{"issues": [{"line": <new line number or null>, "severity": "high" | "medium" | '
        '"low", "message": "<one sentence>"}], "summary": "<one or two sentences on what '
        'changed>"}\n'
        f"List at most {max_issues} potential issues (bugs, security, data loss, "
        "performance, missing tests), most severe first; an empty list when there are none.\n"
        "Each line below shows the new file's line number, then + (added), - (removed) or a "
        "space (unchanged context).\n\n"
        f"{part}"
    )


# ---- settings ---------------------------------------------------------------------------------


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


def context_budget(ctx, settings):
    """The context the parts are cut for: the context_size setting, or the LLM connection's
    context size when that is smaller (the connection would otherwise cut each prompt itself,
    instructions included, and the comment would claim more than the model saw)."""
    setting = int_setting(settings, "context_size", 8192)
    try:
        connection = ctx.call("llm.info", {}).get("context_size")
    except CapabilityError as exc:
        ctx.warn(f"Could not read the LLM connection's context size: {exc}")
        connection = None
    if connection and connection < setting:
        ctx.info(
            f"Cutting the patches for a context of {connection} tokens, the LLM connection's "
            f"context size (the context_size setting says {setting})."
        )
        return connection
    return setting


# ---- GitHub -----------------------------------------------------------------------------------


def github(ctx, capability, payload, doing):
    try:
        return ctx.call(capability, payload)
    except CapabilityError as exc:
        message = f"Could not {doing} {payload.get('repo')}#{payload.get('number')}: {exc}"
        if not exc.retryable:
            message += f" {TOKEN_HINT}"
        ctx.error(message)
        raise ReviewFailure(message, exc.retryable) from None


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
    """The new file's line numbers a part shows."""
    return {int(line[:5]) for line in part.splitlines() if line[:5].strip().isdigit()}


def changed_lines(text):
    return sum(1 for line in text.splitlines() if line[6:7] in ("+", "-"))
