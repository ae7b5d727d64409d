"""The core blocks: triggers (webhook, schedule, manual), logic (filter, template), code (Python,
uploaded Wasm module) and the flow's key-value store. Imported from FlowsConfig.ready().

Integration blocks (GitHub, LLM, Slack, ...) are registered the same way by the integrations app.
"""

from __future__ import annotations

from typing import Any

from flows.catalog import Block, BlockContext, Param, register_block
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

for _block in CORE_BLOCKS:
    register_block(_block)
