"""Write the overall summary and the risks of the pull request from the reviews of its files.

One LLM call. When it fails for good, the step's error path leads to `post`, which writes the
review without the summary and says why.
"""

import json
import re

ANSWER_TOKENS = 700
SEVERITIES = ("high", "medium", "low")
MAX_ROLLUP_LINE = 300


def main(event, ctx):
    plan = ctx.steps["plan"]
    reviewed = [r for r in ctx.steps["files"] if r and not r.get("error")]
    if not reviewed:
        return {"summary": "", "risks": []}
    prompt = (
        f"Description of the pull request: {plan['description'] or '(none)'}\n\n"
        "Reviews of its files:\n" + "\n".join(review_lines(reviewed, plan["part_chars"])) + "\n\n"
        "Answer with one JSON object and nothing else:\n"
        '{"risks": ["<a risk of merging this pull request>"], "summary": "<one paragraph '
        'on what the pull request does>"}\n'
        "List at most 5 risks, most severe first; an empty list when there are none."
    )
    payload = {
        "system": plan["system"],
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.2,
        "max_tokens": ANSWER_TOKENS,
    }
    if plan["model"]:
        payload["model"] = plan["model"]
    answer = ctx.call("llm.chat", payload).get("content") or ""
    value = parse_json(answer)
    if value is None:
        ctx.warn("The model's overall summary was not JSON; kept as text.")
        # No risks from the model: `post` lists the most severe issues of the files instead.
        return {"summary": clean(answer), "risks": None}
    risks = value.get("risks") or []
    if isinstance(risks, str):
        risks = [risks]
    return {
        "summary": clean(value.get("summary")),
        "risks": [clean(r) for r in risks if clean(r)][:5],
    }


def review_lines(reviewed, budget):
    """One line per file, the most severe first, each cut to MAX_ROLLUP_LINE; what does not fit
    the context is counted, not silently dropped."""
    ranked = sorted(
        reviewed, key=lambda e: min([SEVERITIES.index(i["severity"]) for i in e["issues"]] or [3])
    )
    lines, used = [], 0
    for entry in ranked:
        issues = "; ".join(
            f"[{i['severity']}]" + (f" line {i['line']}" if i["line"] else "") + f" {i['message']}"
            for i in entry["issues"]
        )
        text = f"- {entry['path']}: {' '.join(entry['summaries'])}"
        if issues:
            text += f" Potential issues: {issues}"
        text = text[:MAX_ROLLUP_LINE]
        if used + len(text) > budget:
            lines.append(f"- ... and {len(ranked) - len(lines)} more files.")
            break
        lines.append(text)
        used += len(text) + 1
    return lines


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
