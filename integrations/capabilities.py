"""One declaration per integration: a capability for code steps and a no-code block of the same kind.

`offer(...)` registers the handler in `flows.capabilities` and a block in `flows.catalog` whose
params are the capability's payload fields. The same params validate and coerce every payload
(a code step's dict, or a block's rendered template strings), so both ways behave alike. Errors
and results pass through redaction of the bound connection's secrets on the way out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flows.capabilities import CapabilityContext, CapabilityError, register
from flows.catalog import Block, Param, register_block
from integrations.redaction import redact, redact_value, secret_values

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0", ""}


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def split_items(text: str) -> list[str]:
    """A block field's list: "a, b" or one item per line."""
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def _coerce(capability: str, param: Param, value: Any) -> Any:
    where = f"{capability}: '{param.name}'"
    if param.type == "text" and isinstance(value, dict | list):
        # A block's "{{ steps.x }}" renders to the value itself: message text wants it as JSON.
        return json.dumps(value, ensure_ascii=False, indent=2)
    if param.type in {"string", "text", "code"}:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise CapabilityError(f"{where} must be text, got {type(value).__name__}.")
        return str(value)
    if param.type == "integer":
        if isinstance(value, bool):
            raise CapabilityError(f"{where} must be a whole number, got {value!r}.")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise CapabilityError(f"{where} must be a whole number, got {value!r}.")
    if param.type == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            raise CapabilityError(f"{where} must be a number, got {value!r}.") from None
    if param.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
            return value.strip().lower() in TRUE
        raise CapabilityError(f"{where} must be true or false, got {value!r}.")
    if param.type == "list":
        if isinstance(value, str):
            return split_items(value)
        if isinstance(value, list | tuple):
            return list(value)
        raise CapabilityError(f"{where} must be a list, got {type(value).__name__}.")
    if param.type == "choice":
        if value not in param.choices:
            raise CapabilityError(
                f"{where} must be one of {', '.join(param.choices)}, got {value!r}."
            )
        return value
    if param.type == "json" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise CapabilityError(f"{where} is not valid JSON: {exc}.") from None
    return value


def validate(capability: str, params: tuple[Param, ...], payload: Any) -> dict[str, Any]:
    """The payload checked against the params: known fields, required ones present, coerced."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise CapabilityError(
            f"{capability} takes an object of fields, got {type(payload).__name__}."
        )
    names = {p.name for p in params}
    unknown = sorted(set(payload) - names)
    if unknown:
        raise CapabilityError(
            f"{capability} does not take {', '.join(repr(u) for u in unknown)}; "
            f"its fields are {', '.join(p.name for p in params)}."
        )
    clean: dict[str, Any] = {}
    for param in params:
        value = payload.get(param.name)
        if value is None or value == "":
            # A templated default belongs to the block form only; a code step sets fields itself.
            if param.default is not None and not _is_template(param.default):
                clean[param.name] = param.default
            elif param.required:
                hint = f" ({param.description})" if param.description else ""
                raise CapabilityError(f"{capability} needs '{param.name}'{hint}.")
            continue
        clean[param.name] = _coerce(capability, param, value)
    return clean


def _block_executor(kind: str, params: tuple[Param, ...]) -> Callable[[dict, Any], Any]:
    names = [p.name for p in params]

    def execute(config: dict, ctx: Any) -> Any:
        payload = {n: config[n] for n in names if config.get(n) not in (None, "")}
        return ctx.capability(kind)(payload)

    return execute


def offer(
    name: str,
    *,
    service: str,
    title: str,
    description: str,
    params: tuple[Param, ...],
    result: str,
    writes: bool = False,
) -> Callable[[Callable[[CapabilityContext, dict], Any]], Callable]:
    """Register `handler(ctx, payload)` as capability `name` and as a block of the same kind;
    `writes` marks a capability that changes something outside the run (see flows.capabilities)."""

    def decorate(handler: Callable[[CapabilityContext, dict], Any]) -> Callable:
        def guarded(ctx: CapabilityContext, payload: Any) -> Any:
            known = secret_values(ctx.secrets or {})
            try:
                output = handler(ctx, validate(name, params, payload))
            except CapabilityError as exc:
                raise CapabilityError(
                    redact(exc.message, known),
                    retryable=exc.retryable,
                    retry_after=exc.retry_after,
                ) from None
            return redact_value(output, known)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        register(
            name,
            service=service,
            description=description,
            payload_doc={
                p.name: f"{p.type}{'' if p.required else ', optional'}: {p.description}"
                for p in params
            },
            result_doc=result,
            writes=writes,
        )(guarded)
        register_block(
            Block(
                kind=name,
                category="integration",
                title=title,
                description=description,
                params=tuple(_templated(p) for p in params),
                capabilities=(name,),
                service=service,
                outputs=result,
                execute=_block_executor(name, params),
            )
        )
        return guarded

    return decorate


def _templated(param: Param) -> Param:
    # In a block every field may hold a template over the event, settings and earlier steps; a
    # field whose default is a template is filled by it, so the form need not ask for it.
    return Param(
        name=param.name,
        type=param.type,
        label=param.label,
        default=param.default,
        required=param.required and not _is_template(param.default),
        description=param.description,
        choices=param.choices,
        templated=True,
    )
