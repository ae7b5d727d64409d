"""Field values as Jinja2 templates, evaluated in a sandbox with `event`, `settings`, `steps`, `run`.

A string that is exactly one expression (`"{{ steps.fetch.items }}"`) evaluates to the value
itself (a list stays a list); any other string containing `{{` or `{%` renders to text. Missing
keys are lenient (`{{ event.body.missing }}` renders empty and compares false), so optional
webhook fields need no guards. The compiler uses `references()` to check, before deploying,
that every `steps.X` names an earlier step and every `settings.Y` exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

# Bounds on what one template may build, so a field value cannot exhaust the worker's memory.
MAX_TEXT_CHARS = 1_000_000
MAX_NUMBER_BITS = 4096
MAX_RANGE = 10_000


class _Environment(SandboxedEnvironment):
    """Keys of JSON objects win over dict methods: `event.body.items` is the "items" field.

    `*` and `**` are checked before they run ("x" * 10**10 would allocate 10 GB at once), and
    `range` is capped; whole renderings are capped in `render_value`.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    if len(seq) * times > MAX_TEXT_CHARS:
                        raise SecurityError(
                            f"'*' would build a value of {len(seq) * times:,} items; "
                            f"the limit is {MAX_TEXT_CHARS:,}"
                        )
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and left.bit_length() * right > MAX_NUMBER_BITS:
                raise SecurityError(
                    f"'**' would build a number of more than {MAX_NUMBER_BITS} bits"
                )
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE:,} items")
    return values


ENV = _Environment(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True)
ENV.globals["range"] = _range
_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}).)*)\}\}$", re.DOTALL)


class TemplateError(Exception):
    """A template that cannot be parsed or evaluated; the message says where and why."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@lru_cache(maxsize=2048)
def _template(source: str):
    return ENV.from_string(source)


@lru_cache(maxsize=2048)
def _expression(source: str):
    return ENV.compile_expression(source, undefined_to_none=False)


def _native(value: Any) -> Any:
    """Undefined values become None so they can be stored as JSON."""
    if isinstance(value, Undefined):
        return None
    return value


def _describe(exc: Exception) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"template error at line {exc.lineno}: {exc.message}"
    return f"template error: {exc}"


def _render_capped(template: Any, context: dict[str, Any]) -> str:
    """Render chunk by chunk, stopping as soon as the text passes MAX_TEXT_CHARS."""
    parts, size = [], 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > MAX_TEXT_CHARS:
            raise SecurityError(f"the rendered text is longer than {MAX_TEXT_CHARS:,} characters")
        parts.append(chunk)
    return "".join(parts)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside `value` (recursively through lists and dicts)."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            single = _SINGLE_EXPRESSION.match(value.strip())
            if single and "{{" not in single.group("expr"):
                return _native(_expression(single.group("expr").strip())(**context))
            return _render_capped(_template(value), context)
        except Exception as exc:  # noqa: BLE001 - any failure inside a user's template is theirs
            raise TemplateError(_describe(exc)) from exc
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    return value


@dataclass
class References:
    steps: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)


def _collect(tree: nodes.Node, refs: References) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in ("steps", "settings"):
            continue
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        else:
            continue
        (refs.steps if base.name == "steps" else refs.settings).add(key)


def check_template(value: Any, refs: References) -> None:
    """Parse every template inside `value`, adding what it references; raises TemplateError."""
    if isinstance(value, str):
        if is_template(value):
            try:
                _collect(ENV.parse(value), refs)
            except TemplateSyntaxError as exc:
                raise TemplateError(_describe(exc)) from exc
    elif isinstance(value, list):
        for item in value:
            check_template(item, refs)
    elif isinstance(value, dict):
        for item in value.values():
            check_template(item, refs)


# Python steps read `ctx.settings["x"]`, `ctx.steps.get("y")`: enough for the compiler to check.
_PY_REF = re.compile(
    r"\b(?P<base>settings|steps)(?:\[\s*(?P<q1>['\"])(?P<k1>[^'\"]+)(?P=q1)\s*\]"
    r"|\.get\(\s*(?P<q2>['\"])(?P<k2>[^'\"]+)(?P=q2))"
)


def python_references(source: str) -> References:
    refs = References()
    for match in _PY_REF.finditer(source):
        key = match.group("k1") or match.group("k2")
        (refs.steps if match.group("base") == "steps" else refs.settings).add(key)
    return refs
