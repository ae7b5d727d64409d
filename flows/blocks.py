"""The core blocks: triggers (webhook, schedule, manual), logic (filter, template), code (Python,
uploaded Wasm module) and the flow's key-value store. Imported from FlowsConfig.ready().

Integration blocks (GitHub, LLM, Slack, ...) are registered the same way by the integrations app.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from flows.catalog import Block, BlockContext, Param, Route, register_block
from flows.engine import kv  # noqa: F401 - registers the kv.* capabilities the kv blocks call
from flows.engine.errors import SkipRun

FALSE_WORDS = {"", "false", "0", "no", "off", "none", "null"}


def truthy(value: Any) -> bool:
    """Template results are often text: "false", "0" and "" count as false."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


def run_filter(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    if not truthy(config["condition"]):
        raise SkipRun(config.get("reason") or "the filter condition is false", {"passed": False})
    return {"passed": True}


def run_if(config: dict[str, Any], ctx: BlockContext) -> Route:
    result = truthy(config["condition"])
    return Route("true" if result else "false", {"result": result})


SWITCH_OPS = ("equals", "contains", "regex", "glob")
PORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def case_matches(op: str, match: str, value: Any) -> bool:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if op == "equals":
        return text == match
    if op == "contains":
        return match in text
    if op == "regex":
        return re.search(match, text) is not None
    return fnmatch.fnmatchcase(text, match)


def switch_case_problems(cases: Any) -> list[str]:
    """What is wrong with a switch's cases (the compiler reports each)."""
    if not isinstance(cases, list) or not cases:
        return ["'cases' must be a list of {port, op, match}"]
    problems, seen = [], set()
    for number, case in enumerate(cases, 1):
        if not isinstance(case, dict):
            problems.append(f"case {number} must be an object with port, op and match")
            continue
        port = case.get("port")
        if not isinstance(port, str) or not PORT_NAME.match(port) or port in ("default", "error"):
            problems.append(
                f"case {number}: port {port!r} must be a lowercase name (letters, digits, _), "
                "not 'default' or 'error'"
            )
        elif port in seen:
            problems.append(f"case {number}: another case already uses port '{port}'")
        seen.add(port)
        op = case.get("op", "equals")
        if op not in SWITCH_OPS:
            problems.append(f"case {number}: op must be one of " + ", ".join(SWITCH_OPS))
        match = case.get("match")
        if not isinstance(match, str):
            problems.append(f"case {number}: 'match' must be text")
        elif op == "regex":
            try:
                re.compile(match)
            except re.error as exc:
                problems.append(f"case {number}: the regular expression is invalid: {exc}")
    return problems


def run_switch(config: dict[str, Any], ctx: BlockContext) -> Route:
    value = config.get("value")
    for case in config["cases"]:
        if case_matches(case.get("op", "equals"), case["match"], value):
            return Route(case["port"], {"value": value, "case": case["port"]})
    return Route("default", {"value": value, "case": "default"})


# Response headers a flow may set: never cookies or the framing the server owns.
RESPONSE_HEADERS = re.compile(
    r"^(content-type|cache-control|location|retry-after|etag|content-language|link|x-[a-z0-9-]+)$"
)


def run_respond(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    status = config.get("status") or 200
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status.strip())
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"the status must be a number from 100 to 599, not {status!r}")
    headers = config.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("the headers must be an object of name: value")
    clean = {}
    for name, value in headers.items():
        if not RESPONSE_HEADERS.match(str(name).lower()):
            raise ValueError(
                f"a flow may not set the response header '{name}' (allowed: Content-Type, "
                "Cache-Control, Location, Retry-After, ETag, Content-Language, Link, X-…)"
            )
        clean[str(name)] = str(value).replace("\r", " ").replace("\n", " ")
    body = config.get("body")
    as_text = config.get("body_type") == "text"
    return {
        "status": status,
        "headers": clean,
        "body": ("" if body is None else str(body)) if as_text else body,
        "body_type": "text" if as_text else "json",
    }


def run_template(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    return {"text": str(config["template"]) if config["template"] is not None else ""}


def run_kv_get(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    value = ctx.capability("kv.get")({"key": config["key"]})
    return {"key": config["key"], "value": value, "found": value is not None}


def run_kv_set(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    payload = {"key": config["key"], "value": config.get("value")}
    if config.get("ttl_seconds"):
        payload["ttl_seconds"] = config["ttl_seconds"]
    ctx.capability("kv.set")(payload)
    return {"key": config["key"], "value": config.get("value")}


def run_kv_delete(config: dict[str, Any], ctx: BlockContext) -> dict[str, Any]:
    return {"key": config["key"], "deleted": ctx.capability("kv.delete")({"key": config["key"]})}


KEY = Param(
    "key",
    "string",
    label="Key",
    required=True,
    templated=True,
    description="The entry's key; may use templates, e.g. `pr-{{ event.payload.number }}`.",
)

CORE_BLOCKS = (
    Block(
        kind="trigger.webhook",
        category="trigger",
        title="Webhook",
        description="Runs the flow when something POSTs JSON or form data to the flow's secret "
        "URL `/hooks/<token>/`. Add `?wait=5` to get the run's output in the answer.",
        outputs="event: {method, path, query, headers, body} (body: the parsed JSON or form data)",
    ),
    Block(
        kind="trigger.schedule",
        category="trigger",
        title="Schedule",
        description="Runs the flow on a cron schedule (minute hour day month weekday).",
        params=(
            Param(
                "cron",
                "string",
                label="Cron expression",
                required=True,
                description="Five fields, e.g. `0 9 * * 1-5` for 09:00 on weekdays.",
            ),
            Param(
                "timezone",
                "string",
                label="Time zone",
                default="UTC",
                description="IANA time zone the expression is read in, e.g. `Europe/Paris`.",
            ),
        ),
        outputs="event: {scheduled_at} (ISO 8601 time the run was due)",
    ),
    Block(
        kind="trigger.manual",
        category="trigger",
        title="Manual",
        description="Runs only when started by hand: the builder's Test button or "
        "`manage.py flows run`.",
        params=(
            Param(
                "sample_event",
                "json",
                label="Sample event",
                default={},
                description="The event a test run uses when none is given.",
            ),
        ),
        outputs="event: the sample event, or the one given",
    ),
    Block(
        kind="logic.filter",
        category="logic",
        title="Filter",
        description="Continues only when the condition holds; otherwise the run ends as "
        "skipped (not failed).",
        params=(
            Param(
                "condition",
                "string",
                label="Condition",
                required=True,
                templated=True,
                description='A template, e.g. `{{ event.body.action == "opened" }}`. False, '
                '"false", "0", "no", "" and missing values stop the run.',
            ),
            Param(
                "reason",
                "string",
                label="Reason",
                templated=True,
                description="Shown in the run history when the run is skipped.",
            ),
        ),
        outputs="{passed: true}",
        execute=run_filter,
    ),
    Block(
        kind="logic.template",
        category="logic",
        title="Template text",
        description="Renders text from the event, the settings and earlier steps' outputs.",
        params=(
            Param(
                "template",
                "text",
                label="Template",
                required=True,
                templated=True,
                description="Jinja2 text, e.g. `Hello {{ event.body.name }}`.",
            ),
        ),
        outputs="{text}",
        execute=run_template,
    ),
    Block(
        kind="code.python",
        category="code",
        title="Python code",
        description="Python that runs in a WebAssembly sandbox: `def main(event, ctx)` returns "
        "the step's output. `ctx.call(name, payload)` reaches the capabilities the step grants.",
        params=(
            Param(
                "source",
                "code",
                label="Source",
                required=True,
                default="def main(event, ctx):\n    return event\n",
                description="Defines `main(event, ctx)`.",
            ),
        ),
        outputs="what main() returns (JSON)",
    ),
    Block(
        kind="code.wasm",
        category="code",
        title="Wasm module",
        description="An uploaded WebAssembly module (Rust, C, Zig, Go, ...) following the "
        "Flowbuilder ABI, named by its sha256 digest.",
        params=(
            Param(
                "artifact",
                "string",
                label="Module digest",
                required=True,
                description="The sha256 digest shown when the module was uploaded.",
            ),
        ),
        outputs="the module's JSON result",
    ),
    Block(
        kind="kv.get",
        category="integration",
        title="Store: get",
        description="Reads a value from this flow's key-value store.",
        params=(KEY,),
        capabilities=("kv.get",),
        outputs="{key, value, found}",
        execute=run_kv_get,
    ),
    Block(
        kind="kv.set",
        category="integration",
        title="Store: set",
        description="Writes a JSON value to this flow's key-value store.",
        params=(
            KEY,
            Param(
                "value",
                "json",
                label="Value",
                templated=True,
                description="Any JSON value; strings may use templates.",
            ),
            Param(
                "ttl_seconds",
                "integer",
                label="Expires after (seconds)",
                description="Leave empty to keep the value until it is deleted.",
            ),
        ),
        capabilities=("kv.set",),
        outputs="{key, value}",
        execute=run_kv_set,
    ),
    Block(
        kind="kv.delete",
        category="integration",
        title="Store: delete",
        description="Deletes a key from this flow's key-value store.",
        params=(KEY,),
        capabilities=("kv.delete",),
        outputs="{key, deleted}",
        execute=run_kv_delete,
    ),
)

FLOW_BLOCKS = (
    Block(
        kind="logic.if",
        category="logic",
        title="If",
        description="Goes on along `true` or `false` depending on a condition. Steps on the "
        "path not taken are skipped.",
        params=(
            Param(
                "condition",
                "string",
                label="Condition",
                required=True,
                templated=True,
                description='A template, e.g. `{{ "/review" in event.payload.comment.body }}`. '
                'False, "false", "0", "no" and "" count as false.',
            ),
        ),
        ports=("true", "false"),
        outputs="{result}",
        execute=run_if,
    ),
    Block(
        kind="logic.switch",
        category="logic",
        title="Switch",
        description="Goes on along the first case whose match fits the value, or `default`.",
        params=(
            Param(
                "value",
                "string",
                label="Value",
                required=True,
                templated=True,
                description="A template, e.g. `{{ event.body.text }}`.",
            ),
            Param(
                "cases",
                "list",
                label="Cases",
                required=True,
                default=[{"port": "first", "op": "equals", "match": ""}],
                description="Each case: `port` (the path's name), `op` (equals, contains, "
                "regex or glob) and `match`.",
            ),
        ),
        ports=("default",),
        ports_from="cases",
        outputs="{value, case}",
        execute=run_switch,
    ),
    Block(
        kind="logic.merge",
        category="logic",
        title="Merge",
        description="Waits for every path leading to it that was taken, then passes on their "
        "outputs by step id.",
        outputs="{<step id>: output, ...} of the inputs that ran",
        control=True,
    ),
    Block(
        kind="logic.foreach",
        category="logic",
        title="For each",
        description="Runs its body (the steps inside it) once per item of a list, several at "
        "once if you like; then goes on along `out` with the bodies' outputs in item order.",
        params=(
            Param(
                "items",
                "string",
                label="Items",
                required=True,
                templated=True,
                description="A template giving a list, e.g. `{{ steps.files.files }}`. Inside "
                "the body, `item` is the current item and `index` its position.",
            ),
            Param(
                "concurrency",
                "integer",
                label="Items at once",
                default=1,
                templated=True,
                description="How many items run at the same time (capped by the server), e.g. "
                "`4` or `{{ settings.files_at_once }}`.",
            ),
            Param(
                "continue_on_error",
                "boolean",
                label="Continue when an item fails",
                default=False,
                description="Otherwise the first failing item fails the loop.",
            ),
        ),
        ports=("body", "out"),
        has_body=True,
        outputs="[output of each item's body] in item order",
        control=True,
    ),
    Block(
        kind="logic.wait",
        category="logic",
        title="Wait",
        description="Pauses the run for a while or until a time, without holding a worker; "
        "the run resumes by itself, even after a restart.",
        params=(
            Param(
                "seconds",
                "number",
                label="Seconds",
                templated=True,
                description="How long to wait, e.g. `600` for ten minutes.",
            ),
            Param(
                "until",
                "string",
                label="Until",
                templated=True,
                description="Or an ISO 8601 time to wait for, e.g. `2026-12-24T09:00:00Z`.",
            ),
        ),
        outputs="{waited_until}",
        control=True,
    ),
    Block(
        kind="http.respond",
        category="logic",
        title="Respond to webhook",
        description="Sets the answer the webhook's caller gets: it leaves as soon as this step "
        "runs, while the run goes on. Webhook flows only.",
        params=(
            Param(
                "status",
                "integer",
                label="Status code",
                default=200,
                templated=True,
                description="An HTTP status, e.g. `200` or `201`.",
            ),
            Param(
                "body",
                "json",
                label="Body",
                templated=True,
                description='JSON (or text), e.g. `{"text": "{{ steps.answer.text }}"}`.',
            ),
            Param(
                "body_type",
                "choice",
                label="Body type",
                default="json",
                choices=("json", "text"),
                description="Send the body as JSON or as plain text.",
            ),
            Param(
                "headers",
                "json",
                label="Headers",
                default={},
                templated=True,
                description="Extra headers, e.g. Content-Type or Cache-Control (never cookies).",
            ),
        ),
        outputs="{status, headers, body}",
        execute=run_respond,
    ),
    Block(
        kind="flow.call",
        category="logic",
        title="Call a flow",
        description="Runs another of your deployed flows with an input and (unless you let it "
        "run on its own) waits for its output.",
        params=(
            Param(
                "flow",
                "integer",
                label="Flow id",
                required=True,
                description="The id of one of your deployed flows (shown on its page).",
            ),
            Param(
                "version",
                "string",
                label="Version",
                default="latest",
                description="`latest`, or a version number to pin.",
            ),
            Param(
                "input",
                "json",
                label="Input",
                templated=True,
                description="The event the called flow gets.",
            ),
            Param(
                "wait",
                "boolean",
                label="Wait for its output",
                default=True,
                description="Otherwise the run goes on at once with the child run's id.",
            ),
        ),
        outputs="the called run's output (or {run_id} without waiting)",
        control=True,
    ),
)

for _block in CORE_BLOCKS + FLOW_BLOCKS:
    register_block(_block)
