"""Classify a new issue with the LLM, label it, and answer it with a helpful first reply.

The model must answer with strict JSON ({"category": ..., "reply": ...}). When it does not, it is
asked once more; when it still does not (or fails), the issue is classified by keywords and gets
a plain acknowledgement, so every new issue is labelled and answered.
"""

import json
import re

CATEGORIES = ("bug", "feature", "question", "docs")
KEYWORDS = {
    "bug": ("bug", "error", "crash", "exception", "traceback", "broken", "fails", "regression"),
    "docs": ("docs", "documentation", "readme", "typo", "tutorial"),
    "feature": ("feature", "support for", "would be nice", "add a", "request", "proposal"),
    "question": ("how do", "how can", "how to", "question", "is it possible", "?"),
}
DEFAULT_LABELS = {
    "bug": "bug",
    "feature": "enhancement",
    "question": "question",
    "docs": "documentation",
}
FALLBACK_REPLY = (
    "Thank you for opening this issue! It has been labelled **{category}**; a maintainer will "
    "look at it soon."
)


def main(event, ctx):
    payload = event.get("payload") or {}
    issue = payload.get("issue") or {}
    repo = (payload.get("repository") or {}).get("full_name", "")
    number = issue.get("number")
    if (issue.get("user") or {}).get("type") == "Bot":
        ctx.info(f"Skipped: #{number} was opened by a bot.")
        return {"skipped": "opened by a bot"}
    settings = ctx.settings

    result, how = classify(ctx, settings, issue)
    category = result["category"]
    label = labels(settings).get(category, category)
    ctx.call("github.labels.add", {"repo": repo, "number": number, "labels": [label]})
    ctx.info(f"#{number} is a {category} ({how}); labelled '{label}'.")
    reply = result.get("reply") or FALLBACK_REPLY.format(category=category)
    comment = ctx.call("github.issue.reply", {"repo": repo, "number": number, "body": reply})
    return {"category": category, "label": label, "how": how, "comment_id": comment.get("id")}


def labels(settings):
    value = settings.get("labels") or {}
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return {**DEFAULT_LABELS, **value}


def classify(ctx, settings, issue):
    """({category, reply}, how it was decided)."""
    messages = [{"role": "user", "content": prompt(settings, issue)}]
    for attempt in (1, 2):
        try:
            answer = chat(ctx, settings, messages)
        except ctx.CapabilityError as exc:
            ctx.error(f"The model failed: {exc}")
            break
        result = parse(answer)
        if result:
            return result, "by the model"
        ctx.warn(f"The model's answer was not the JSON asked for (attempt {attempt}).")
        messages += [
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": "That was not valid. Answer with the JSON object only, for example "
                '{"category": "bug", "reply": "..."}.',
            },
        ]
    category = by_keywords(f"{issue.get('title', '')}\n{issue.get('body') or ''}")
    return {"category": category, "reply": ""}, "by keywords, the model's answer was unusable"


def prompt(settings, issue):
    project = settings.get("project_description") or "an open-source project"
    language = settings.get("language") or "English"
    return (
        f"You triage new issues of {project}.\n\n"
        f"Title: {issue.get('title', '')}\n"
        f"Author: @{(issue.get('user') or {}).get('login', '')}\n"
        f"Body:\n{(issue.get('body') or '(empty)')[:4000]}\n\n"
        "Classify the issue as exactly one of: bug, feature, question, docs. Then write a "
        f"helpful, friendly first reply in {language} (Markdown, at most 120 words): thank the "
        "author, and ask for what is missing (for a bug: version, steps to reproduce, expected "
        "and actual behaviour) or point to a next step. Do not promise a fix or a date.\n"
        'Answer with one JSON object and nothing else: {"category": "...", "reply": "..."}'
    )


def chat(ctx, settings, messages):
    payload = {"messages": messages, "temperature": 0}
    if settings.get("model"):
        payload["model"] = settings["model"]
    return ctx.call("llm.chat", payload).get("content") or ""


def parse(answer):
    text = answer.strip()
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
    if not isinstance(value, dict):
        return None
    category = str(value.get("category") or "").strip().lower()
    if category not in CATEGORIES:
        return None
    return {"category": category, "reply": str(value.get("reply") or "").strip()}


def by_keywords(text):
    text = text.lower()
    scores = {c: sum(text.count(word) for word in words) for c, words in KEYWORDS.items()}
    best = max(CATEGORIES, key=lambda c: scores[c])
    return best if scores[best] else "question"
