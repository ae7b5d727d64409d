"""The flow document: its schema version, structural checks, execution order, export and import.

The document is the draft a user edits and the export/import format; `docs/flow-document.md`
describes it field by field. The compiler (flows.compiler) checks what this module cannot see on
its own: blocks, settings, connections, artifacts and templates.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from django.db import transaction

SCHEMA = "flowbuilder/flow@2"
SCHEMA_V1 = "flowbuilder/flow@1"
OUT = "out"
ERROR = "error"
STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
TOP_LEVEL_KEYS = {
    "schema",
    "name",
    "description",
    "trigger",
    "settings",
    "connections",
    "steps",
    "edges",
    "layout",
    "on_error",
    "concurrency",
    "pinned",
}
STEP_KEYS = {
    "id",
    "kind",
    "config",
    "grants",
    "limits",
    "connection",
    "retry",
    "name",
    "title",
    "description",
    "parent",
}
TRIGGER = "trigger"


class Issue(str):
    """One problem in a document: reads as its message, and carries the step and field it is on."""

    step: str | None
    field: str | None

    def __new__(cls, message: str, step: str | None = None, field: str | None = None) -> Issue:
        obj = super().__new__(cls, message)
        obj.step = step
        obj.field = field
        return obj

    @property
    def message(self) -> str:
        return str(self)

    def as_dict(self) -> dict[str, str | None]:
        return {"step": self.step, "field": self.field, "message": str(self)}


def issue(step: str | None, field: str | None, text: str) -> Issue:
    """An issue whose message names its step: "step 'summarise': setting 'x' is required"."""
    if step == TRIGGER:
        return Issue(f"trigger: {text}", step, field)
    if step:
        return Issue(f"step '{step}': {text}", step, field)
    return Issue(text, None, field)


def upgrade(document: Any) -> Any:
    """A `@1` document as `@2`, losslessly: two-element edges gain the `out` port, and a `@1`
    document without edges (whose steps ran in list order) gets the chain of edges that order
    meant. Anything else is returned as it is (the structure checks report what is wrong)."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA_V1:
        return document
    upgraded = copy.deepcopy(document)
    upgraded["schema"] = SCHEMA
    edges = upgraded.get("edges")
    steps = upgraded.get("steps")
    if not edges and isinstance(steps, list) and steps:
        ids = [s.get("id") for s in steps if isinstance(s, dict)]
        upgraded["edges"] = [[a, OUT, b] for a, b in zip([TRIGGER, *ids], ids, strict=False)]
    elif isinstance(edges, list):
        upgraded["edges"] = [normal_edge(e) for e in edges]
    return upgraded


def normal_edge(edge: Any) -> Any:
    """`[from, to]` is shorthand for `[from, "out", to]`; anything else is returned as it is."""
    if isinstance(edge, list) and len(edge) == 2:
        return [edge[0], OUT, edge[1]]
    return edge


def edge_list(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The document's edges as (from, port, to) triples (shorthand pairs expanded)."""
    return [tuple(normal_edge(e)) for e in document.get("edges") or []]


def empty_document(name: str = "Untitled flow") -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "name": name,
        "description": "",
        "trigger": {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "connections": {},
        "steps": [],
        "edges": [],
    }


def setting_spec(raw: Any) -> dict[str, Any]:
    """A setting is {"value", "required", "description", "secret"}; a bare value is shorthand."""
    if isinstance(raw, dict):
        return raw
    return {"value": raw}


SEALED = "sealed"  # a secret setting's value, encrypted (flows.crypto)


def seal_settings(document: Any) -> Any:
    """The document with the value of every secret setting encrypted into "sealed" (its
    "value" left empty), as drafts and versions are stored; other documents are returned as
    they are."""
    from flows import crypto

    if not isinstance(document, dict) or not isinstance(document.get("settings"), dict):
        return document
    plain = {
        name: spec
        for name, spec in document["settings"].items()
        if isinstance(spec, dict) and spec.get("secret") and spec.get("value") not in (None, "")
    }
    if not plain:
        return document
    sealed = dict(document, settings=dict(document["settings"]))
    for name, spec in plain.items():
        token = crypto.encrypt_json({"value": spec["value"]})
        sealed["settings"][name] = {**spec, "value": "", SEALED: token}
    return sealed


def unseal(token: str) -> Any:
    """The value of a sealed secret setting; raises flows.crypto.SecretsUnreadable."""
    from flows import crypto

    return crypto.decrypt_json(token).get("value")


def check_structure(document: Any) -> list[Issue]:
    """Shape checks: types, ids, keys. An empty list means the compiler can read it safely."""
    if not isinstance(document, dict):
        return [Issue("The flow document must be a JSON object.")]
    issues: list[Issue] = []
    schema = document.get("schema")
    if schema != SCHEMA:
        issues.append(
            Issue(
                f"unsupported schema {schema!r}: this server reads documents with "
                f'"schema": "{SCHEMA}" (and upgrades "{SCHEMA_V1}")',
                None,
                "schema",
            )
        )
    for key in sorted(set(document) - TOP_LEVEL_KEYS):
        issues.append(Issue(f"unknown top-level key '{key}'", None, key))
    for key in ("name", "description"):
        if key in document and not isinstance(document[key], str):
            issues.append(Issue(f"'{key}' must be a string", None, key))

    trigger = document.get("trigger")
    if not isinstance(trigger, dict) or not isinstance(trigger.get("kind"), str):
        issues.append(issue(TRIGGER, "kind", 'a trigger with a "kind" is required'))
    elif not isinstance(trigger.get("config", {}), dict):
        issues.append(issue(TRIGGER, "config", '"config" must be an object'))

    settings = document.get("settings", {})
    if not isinstance(settings, dict):
        issues.append(Issue('"settings" must be an object', None, "settings"))
    else:
        for name, raw in settings.items():
            if not SETTING_NAME.match(name):
                issues.append(
                    Issue(
                        f"setting name '{name}' must start with a letter and hold only letters, "
                        "digits and underscores",
                        None,
                        f"settings.{name}",
                    )
                )
            spec = setting_spec(raw)
            if "required" in spec and not isinstance(spec["required"], bool):
                issues.append(
                    Issue(
                        f"setting '{name}': 'required' must be true or false",
                        None,
                        f"settings.{name}",
                    )
                )

    connections = document.get("connections", {})
    if not isinstance(connections, dict):
        issues.append(Issue('"connections" must be an object', None, "connections"))
    else:
        for alias, spec in connections.items():
            where = f"connections.{alias}"
            if not isinstance(spec, dict) or not isinstance(spec.get("service"), str):
                issues.append(Issue(f"connection '{alias}' needs a \"service\"", None, where))
                continue
            ref = spec.get("connection")
            if ref is not None and (isinstance(ref, bool) or not isinstance(ref, int)):
                issues.append(
                    Issue(
                        f"connection '{alias}': \"connection\" must be the id of one of your "
                        "connections, or null",
                        None,
                        where,
                    )
                )
            if not isinstance(spec.get("limits", {}), dict):
                issues.append(
                    Issue(f"connection '{alias}': \"limits\" must be an object", None, where)
                )

    pinned = document.get("pinned", {})
    if not isinstance(pinned, dict) or not all(
        isinstance(p, dict) and isinstance(p.get("port", "out"), str) for p in pinned.values()
    ):
        issues.append(
            Issue('"pinned" must map step ids to {"output": ..., "port": "..."}', None, "pinned")
        )

    steps = document.get("steps", [])
    if not isinstance(steps, list):
        issues.append(Issue('"steps" must be a list', None, "steps"))
        steps = []
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            issues.append(Issue(f"step {index + 1} must be an object", None, "steps"))
            continue
        step_id = step.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id) or step_id == TRIGGER:
            issues.append(
                Issue(
                    f"step {index + 1}: id {step_id!r} must start with a lowercase letter and "
                    "hold only lowercase letters, digits and underscores (and not be 'trigger')",
                    str(step_id) if step_id is not None else None,
                    "id",
                )
            )
            continue
        if step_id in seen:
            issues.append(issue(step_id, "id", "another step has the same id"))
        seen.add(step_id)
        for key in sorted(set(step) - STEP_KEYS):
            issues.append(issue(step_id, key, f"unknown key '{key}'"))
        if not isinstance(step.get("kind"), str):
            issues.append(issue(step_id, "kind", 'a "kind" naming a block is required'))
        if not isinstance(step.get("config", {}), dict):
            issues.append(issue(step_id, "config", '"config" must be an object'))
        grants = step.get("grants", [])
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
            issues.append(issue(step_id, "grants", '"grants" must be a list of capability names'))
        if not isinstance(step.get("limits", {}), dict):
            issues.append(issue(step_id, "limits", '"limits" must be an object'))
        if "connection" in step and not isinstance(step["connection"], str):
            issues.append(issue(step_id, "connection", '"connection" must name a connection alias'))
        retry = step.get("retry", {})
        if not isinstance(retry, dict):
            issues.append(issue(step_id, "retry", '"retry" must be an object'))
        else:
            attempts = retry.get("max_attempts", 1)
            backoff = retry.get("backoff_s", 0)
            if (
                isinstance(attempts, bool)
                or not isinstance(attempts, int)
                or not 1 <= attempts <= 10
            ):
                issues.append(issue(step_id, "retry", "retry.max_attempts must be 1 to 10"))
            if (
                isinstance(backoff, bool)
                or not isinstance(backoff, int | float)
                or not 0 <= backoff <= 300
            ):
                issues.append(issue(step_id, "retry", "retry.backoff_s must be 0 to 300 seconds"))

    edges = document.get("edges", [])
    if not isinstance(edges, list) or not all(
        isinstance(e, list) and len(e) in (2, 3) and all(isinstance(n, str) for n in e)
        for e in edges
    ):
        issues.append(
            Issue('"edges" must be a list of ["from", "port", "to"] triples', None, "edges")
        )
    return issues


def export_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to share, as `@2`: connections by alias and service only, secret settings
    blanked."""
    exported = copy.deepcopy(upgrade(document))
    exported.pop("pinned", None)  # sample data of the builder's test runs stays on the server
    exported["connections"] = {
        alias: {"service": spec.get("service")}
        | ({"limits": spec["limits"]} if spec.get("limits") else {})
        for alias, spec in (document.get("connections") or {}).items()
        if isinstance(spec, dict)
    }
    for name, raw in list((exported.get("settings") or {}).items()):
        spec = setting_spec(raw)
        if spec.get("secret"):
            spec = {k: v for k, v in spec.items() if k != SEALED}
            exported["settings"][name] = {**spec, "value": ""}
    return exported


def import_document(document: dict[str, Any], owner, name: str = ""):
    """Create a draft flow for `owner`; each connection alias binds to the owner's only
    connection of that service, if there is exactly one (otherwise it stays unbound)."""
    from flows import connections
    from flows.models import Flow

    document = copy.deepcopy(upgrade(document))
    problems = check_structure(document)
    if problems:
        raise ValueError("; ".join(problems))
    for spec in (document.get("connections") or {}).values():
        candidates = connections.source().of_service(owner, spec["service"])[:2]
        spec["connection"] = candidates[0] if len(candidates) == 1 else None
    title = str(name or document.get("name") or "Imported flow")[:200]
    with transaction.atomic():
        return Flow.objects.create(
            owner=owner,
            name=title,
            slug=Flow.objects.unique_slug(owner, title),
            description=document.get("description", ""),
            document=document,
        )
