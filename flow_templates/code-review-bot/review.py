"""Review one file of the pull request: one LLM call per part of its patch, answered in JSON.

This step is the body of the loop `files`: `ctx.run["item"]` is the file planned by `plan`
(its prompts, one per part). A part the model fails on is noted and the other parts go on; when
it fails on every part the step fails, so the loop records the file as not reviewed and the
comment says why, while the other files go on.

With the setting `investigate` on, the model may first read other files of the repository (at
the pull request's head commit) through one read-only tool, `read_file`, which this step answers
with the `github.file.read` capability: at most `investigate_reads` files per part.
"""

import json
import re
import time

ANSWER_TOKENS = 700
# What one file read may add to the conversation.
READ_CHARS = 6000
READ_TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read another file of the repository at the pull request's head commit, "
        "e.g. to see how the changed code is called. Returns the file's text.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "e.g. src/app.py"}},
            "required": ["path"],
        },
    },
}
SEVERITIES = ("high", "medium", "low")
# Stop starting model calls before the step's time limit ("limits": {"timeout_s": 300}).
TIME_BUDGET_S = 240


class ReviewFailure(Exception):
    """No part of the file was reviewed; the message says why."""


def main(event, ctx):
    started = time.monotonic()
    item = ctx.run["item"]
    plan = ctx.steps["plan"]
    max_issues = int_setting(ctx.settings, "max_issues", 3)
    path, parts = item["path"], item["parts"]
    entry = {key: item[key] for key in ("path", "status", "previous", "additions", "deletions")}
    entry.update(truncated=item["truncated"], parts=len(parts), issues=[], summaries=[], errors=[])
    cut = []
    for index, part in enumerate(parts, 1):
        label = path if len(parts) == 1 else f"{path} (part {index} of {len(parts)})"
        part_name = f"part {index} of {len(parts)}" if len(parts) > 1 else ""
        if time.monotonic() - started > TIME_BUDGET_S:
            entry["errors"].append([part_name, "not reached: the review ran out of time"])
            continue
        try:
            result = ask_with_retry(ctx, plan, part["prompt"], label, started)
        except ctx.CapabilityError as exc:
            ctx.error(f"The model failed on {label}: {exc}")
            entry["errors"].append([part_name, f"the model failed: {exc}"])
            continue
        if result.get("truncated"):
            # The LLM connection cut the prompt: the comment says the model saw only a part.
            cut.append(str(index))
        answer = result.get("content") or ""
        value = parse_json(answer)
        if value is None:
            ctx.warn(f"The model's answer on {label} was not JSON; kept as text.")
            entry["summaries"].append(clean(answer))
            continue
        for issue in parse_issues(value, set(part["lines"])):
            if issue not in entry["issues"]:
                entry["issues"].append(issue)
        if clean(value.get("summary")):
            entry["summaries"].append(clean(value.get("summary")))
    if cut:
        what = "the patch" if len(parts) == 1 else f"part {', '.join(cut)} of {len(parts)}"
        note = f"the LLM connection cut {what} to fit its context: the model saw only the start"
        entry["truncated"] = "; ".join(filter(None, [entry["truncated"], note]))
    if len(entry["errors"]) == len(parts):
        raise ReviewFailure(entry["errors"][0][1])
    entry["issues"] = sorted(entry["issues"], key=by_severity)[:max_issues]
    ctx.info(f"Reviewed {path}: {len(entry['issues'])} potential issues.")
    return entry


def ask_with_retry(ctx, plan, prompt, label, started):
    """One more try after a failure that may pass (a garbled or overloaded answer), in time."""
    try:
        return ask(ctx, plan, prompt)
    except ctx.CapabilityError as exc:
        if not exc.retryable or time.monotonic() - started > TIME_BUDGET_S:
            raise
        ctx.warn(f"The model failed on {label}, asking once more: {exc}")
    return ask(ctx, plan, prompt)


def ask(ctx, plan, prompt):
    payload = {
        "system": plan["system"],
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.2,
        "max_tokens": ANSWER_TOKENS,
    }
    if plan["model"]:
        payload["model"] = plan["model"]
    reads = int_setting(ctx.settings, "investigate_reads", 3)
    if str(ctx.settings.get("investigate")).lower() not in ("true", "1", "yes", "on"):
        return ctx.call("llm.chat", payload)
    payload["system"] += (
        f" Before you answer you may read up to {reads} other files of the repository with "
        "read_file, when the change cannot be judged without them."
    )
    return investigate(ctx, plan, payload, reads)


def investigate(ctx, plan, payload, reads):
    """The model's turns until it answers: each read_file call is answered with the file."""
    messages = list(payload["messages"])
    done = 0
    while True:
        turn = dict(payload, messages=messages)
        if done < reads:
            turn["tools"] = [READ_TOOL]
        result = ctx.call("llm.chat", turn)
        calls = result.get("tool_calls") or []
        if not calls or done >= reads:
            return result
        messages.append(
            {
                "role": "assistant",
                "content": result.get("content") or "",
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls
                ],
            }
        )
        for call in calls:
            done += 1
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": read_file(ctx, plan, call)}
            )


def read_file(ctx, plan, call):
    """The answer to one tool call: the file's text, or what went wrong, for the model."""
    if call["name"] != "read_file":
        return f"There is no tool named {call['name']!r}; the only tool is read_file."
    try:
        path = json.loads(call["arguments"] or "{}").get("path")
    except (ValueError, AttributeError):
        path = None
    if not isinstance(path, str) or not path:
        return 'Call read_file with a JSON object such as {"path": "src/app.py"}.'
    try:
        found = ctx.call(
            "github.file.read", {"repo": plan["repo"], "path": path, "ref": plan["head"]}
        )
    except ctx.CapabilityError as exc:
        return f"Could not read {path}: {exc}"
    ctx.info(f"Read {path} to review the change.")
    if found.get("type") == "dir":
        return json.dumps([e["path"] for e in found["entries"]])
    text = found.get("content") or ""
    return text[:READ_CHARS] + ("\n[... cut]" if len(text) > READ_CHARS else "")


def int_setting(settings, name, default):
    try:
        value = int(settings.get(name))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


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
