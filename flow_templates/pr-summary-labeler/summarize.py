"""Label a pull request by size and area, and summarise it in its description or a comment.

Size labels (size/XS .. size/XL) count the changed lines (additions + deletions) of the files not
matched by size_ignore_globs; area labels come from the area_labels mapping of path patterns to
labels. The summary is written by the LLM into a section of the description delimited by
markers, so the author's own text stays as it is and later runs replace only our section.
"""

import fnmatch
import json
import re

START = "<!-- flowbuilder:summary:start -->"
END = "<!-- flowbuilder:summary:end -->"
# github.comment.upsert finds our comment again by this marker.
COMMENT_MARKER = "pr-summary"
SIZES = ("XS", "S", "M", "L", "XL")
DEFAULT_LIMITS = [10, 30, 100, 500]
CHARS_PER_TOKEN = 3
RESERVED_TOKENS = 1000


def main(event, ctx):
    payload = event.get("payload") or {}
    pr = payload.get("pull_request") or {}
    repo = (payload.get("repository") or {}).get("full_name", "")
    number = pr.get("number") or payload.get("number")
    settings = ctx.settings
    files = ctx.call("github.pr.files", {"repo": repo, "number": number})

    size_ignore = list_setting(settings, "size_ignore_globs", [])
    counted = [f for f in files if not matches(f.get("filename", ""), size_ignore)]
    lines = sum(f.get("additions", 0) + f.get("deletions", 0) for f in counted)
    size = size_label(lines, list_setting(settings, "size_limits", DEFAULT_LIMITS))
    areas = area_labels([f.get("filename", "") for f in files], mapping(settings))
    labels = [f"size/{size}"] + areas
    now_on = ctx.call("github.labels.add", {"repo": repo, "number": number, "labels": labels})
    ctx.info(f"Labelled #{number}: {', '.join(labels)} ({lines} changed lines).")
    # A pull request that grew or shrank keeps one size label: the new one.
    stale = [
        name
        for name in (label.get("name", "") for label in now_on)
        if name.startswith("size/") and name != f"size/{size}"
    ]
    if stale:
        ctx.call("github.labels.remove", {"repo": repo, "number": number, "labels": stale})
        ctx.info(f"Removed the old size label: {', '.join(stale)}.")

    try:
        summary = summarise(ctx, settings, pr, files)
    except ctx.CapabilityError as exc:
        ctx.error(f"The model could not summarise #{number}: {exc}")
        raise
    section = f"{START}\n### Summary\n\n{summary}\n\n<sub>Written by Flowbuilder.</sub>\n{END}"
    where = str(settings.get("summary_in") or "description").strip().lower()
    if where == "comment":
        ctx.call(
            "github.comment.upsert",
            {"repo": repo, "number": number, "marker": COMMENT_MARKER, "body": section},
        )
    else:
        # The event's copy of the description may be stale: read the current one.
        current = ctx.call("github.pr.get", {"repo": repo, "number": number}).get("body") or ""
        ctx.call(
            "github.pr.update",
            {"repo": repo, "number": number, "body": with_section(current, section)},
        )
    ctx.info(f"Summary written to the {'comment' if where == 'comment' else 'description'}.")
    return {"labels": labels, "changed_lines": lines, "summary": summary}


def list_setting(settings, name, default):
    value = settings.get(name)
    if value is None or value == "":
        return list(default)
    if isinstance(value, str):
        value = re.split(r"[,\n]", value)
    return [v.strip() if isinstance(v, str) else v for v in value if str(v).strip()]


def mapping(settings):
    """area_labels as {pattern: label}: a JSON object, or lines of `pattern = label`."""
    value = settings.get("area_labels") or {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            return json.loads(text)
        pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line]
        return {k.strip(): v.strip() for k, v in pairs}
    return dict(value)


def matches(path, patterns):
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatch(path, pattern):
                return True
        elif fnmatch.fnmatch(name, pattern):
            return True
    return False


def size_label(lines, limits):
    """XS below the first limit, S below the second, ... XL from the last one up."""
    for size, limit in zip(SIZES, limits, strict=False):
        if lines < int(limit):
            return size
    return SIZES[-1]


def area_labels(paths, areas):
    found = []
    for pattern, label in areas.items():
        if label not in found and any(matches(p, [pattern]) for p in paths):
            found.append(label)
    return found


def with_section(body, section):
    """The description with our section replaced, or appended after the author's text."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(body):
        return pattern.sub(lambda _: section, body, count=1)
    return f"{body.rstrip()}\n\n{section}" if body.strip() else section


def summarise(ctx, settings, pr, files):
    context_size = int(settings.get("context_size") or 8192)
    budget = max(2000, (context_size - RESERVED_TOKENS) * CHARS_PER_TOKEN)
    listing = "\n".join(
        f"- {f.get('filename')} ({f.get('status')}, +{f.get('additions', 0)} "
        f"-{f.get('deletions', 0)})"
        for f in files
    )
    patches, used = [], len(listing)
    for f in files:
        patch = f.get("patch") or ""
        if not patch or used + len(patch) > budget:
            continue
        patches.append(f"--- {f.get('filename')}\n{patch}")
        used += len(patch)
    language = settings.get("language") or "English"
    prompt = (
        f"Pull request “{pr.get('title', '')}”.\n"
        f"Author's description: {(pr.get('body') or '(none)')[:1500]}\n\n"
        f"Changed files:\n{listing}\n\n"
        + ("Changes:\n" + "\n".join(patches) + "\n\n" if patches else "")
        + f"Summarise this pull request for a reviewer in {language}: one sentence on its "
        "purpose, then at most 5 bullet points on the notable changes. Markdown, no heading."
    )
    payload = {"messages": [{"role": "user", "content": prompt}], "temperature": 0.2}
    if settings.get("model"):
        payload["model"] = settings["model"]
    return ctx.call("llm.chat", payload)["content"].strip()
