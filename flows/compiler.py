"""Compile a flow document into a plan, deploy it as an immutable FlowVersion, roll back.

The plan is what a run executes: the steps in order, each with its block kind, configuration,
sandbox limits, retry policy, the artifact digest of an uploaded module, and its capability
bindings (capability → the owner's connection and its limits). Compiling checks everything that
can be checked before a run; each error names its step and field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Max

from flows import capabilities, catalog, connections, graph, templating
from flows.blocks import switch_case_problems
from flows.document import (
    SCHEMA,
    SEALED,
    TRIGGER,
    Issue,
    check_structure,
    issue,
    seal_settings,
    setting_spec,
    upgrade,
)
from flows.models import Artifact, Flow, FlowVersion, document_hash

PLAN_SCHEMA = "flowbuilder/plan@2"
CONCURRENCY_MODES = ("queue", "cancel_in_progress", "drop_new")
# A loop's body counts this many times in the run's time limit (its items are known only then).
LOOP_TIME_FACTOR = 10
# Time a run may spend outside its steps (loading, saving, dispatch) before it counts as stuck.
RUN_OVERHEAD_S = 30


class CompileError(Exception):
    """The document cannot be deployed. `errors` holds one Issue (a str with .step, .field) each."""

    def __init__(self, errors: list[Issue]):
        super().__init__("; ".join(errors))
        self.errors = errors

    def as_dicts(self) -> list[dict[str, str | None]]:
        return [e.as_dict() for e in self.errors]


def _type_problem(param: catalog.Param, value: Any) -> str | None:
    if param.templated and templating.is_template(value):
        return None  # its type is known only at run time
    kind = param.type
    if kind in ("string", "text", "code", "secret-ref") and not isinstance(value, str):
        return "must be text"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be a whole number"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "list" and not isinstance(value, list):
        return "must be a list"
    if kind == "choice" and value not in param.choices:
        return "must be one of " + ", ".join(repr(c) for c in param.choices)
    return None


class _Compiler:
    def __init__(self, document: dict[str, Any], owner):
        self.document = upgrade(document)
        self.owner = owner
        self.issues: list[Issue] = []
        self.settings: dict[str, Any] = {}
        self.missing_settings: set[str] = set()
        self.reported_settings: set[str] = set()
        self.step_ids: set[str] = set()  # filled once the document's structure is checked
        # Connections' services by id: a flow's steps often bind several capabilities to one.
        self.connections: dict[int, str | None] = {}

    def add(self, step: str | None, field: str | None, text: str) -> None:
        self.issues.append(issue(step, field, text))

    # settings --------------------------------------------------------------------------------
    def compile_settings(self) -> None:
        document = seal_settings(self.document)
        for name, raw in (document.get("settings") or {}).items():
            spec = setting_spec(raw)
            value = spec.get("value")
            if spec.get(SEALED):
                # The plan keeps it encrypted: a run decrypts it on the worker.
                self.settings[name] = {SEALED: spec[SEALED]}
                continue
            if spec.get("required") and value in (None, ""):
                self.missing_settings.add(name)
            self.settings[name] = value

    def check_references(self, step: str, field: str, refs: templating.References, earlier) -> None:
        for ref in sorted(refs.steps):
            if ref == step:
                self.add(step, field, f"field '{field}' refers to this step's own output")
            elif ref not in self.step_ids:
                self.add(
                    step, field, f"field '{field}' refers to step '{ref}', which does not exist"
                )
            elif ref not in earlier:
                self.add(
                    step,
                    field,
                    f"field '{field}' refers to step '{ref}', which does not run before this "
                    "step (connect it to this step's inputs)",
                )
        for ref in sorted(refs.settings):
            if ref not in self.settings:
                self.add(
                    step, field, f"field '{field}' refers to setting '{ref}', which is not defined"
                )
            elif ref in self.missing_settings:
                self.reported_settings.add(ref)
                self.add(step, field, f"setting '{ref}' is required")

    # config ----------------------------------------------------------------------------------
    def compile_config(
        self, step: str, block: catalog.Block, config: dict[str, Any], earlier: list[str]
    ) -> dict[str, Any]:
        known = {p.name for p in block.params}
        for name in sorted(set(config) - known):
            self.add(step, name, f"unknown field '{name}' for block '{block.kind}'")
        result: dict[str, Any] = {}
        for param in block.params:
            value = config.get(param.name)
            if value is None or value == "":
                if param.required:
                    self.add(step, param.name, f"field '{param.name}' is required")
                    continue
                if param.default is not None:
                    result[param.name] = param.default
                continue
            problem = _type_problem(param, value)
            if problem:
                self.add(step, param.name, f"field '{param.name}' {problem}")
                continue
            if param.templated:
                refs = templating.References()
                try:
                    templating.check_template(value, refs)
                except templating.TemplateError as exc:
                    self.add(step, param.name, f"field '{param.name}': {exc}")
                    continue
                self.check_references(step, param.name, refs, earlier)
            result[param.name] = value
        return result

    # trigger ---------------------------------------------------------------------------------
    def compile_trigger(self) -> dict[str, Any]:
        trigger = self.document["trigger"]
        block = catalog.get_block(trigger["kind"])
        if block is None or block.category != "trigger":
            self.add(TRIGGER, "kind", f"unknown trigger block '{trigger['kind']}'")
            return {"kind": trigger["kind"], "config": {}}
        config = self.compile_config(TRIGGER, block, trigger.get("config") or {}, [])
        if block.kind == "trigger.schedule" and isinstance(config.get("cron"), str):
            self.check_schedule(config)
        return {"kind": block.kind, "config": config}

    def check_schedule(self, config: dict[str, Any]) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from croniter import croniter

        cron = config["cron"].strip()
        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            self.add(
                TRIGGER,
                "cron",
                f"'{cron}' is not a valid cron expression (five fields: minute hour day month "
                "weekday, e.g. '*/15 * * * *')",
            )
        try:
            ZoneInfo(config.get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            self.add(TRIGGER, "timezone", f"unknown time zone '{config.get('timezone')}'")

    # bindings --------------------------------------------------------------------------------
    def bind(self, step: dict[str, Any], names: list[str], field: str) -> dict[str, Any]:
        step_id = step["id"]
        aliases: dict[str, dict[str, Any]] = self.document.get("connections") or {}
        bindings: dict[str, Any] = {}
        for name in names:
            capability = capabilities.get(name)
            if capability is None:
                self.add(step_id, field, f"unknown capability '{name}'")
                continue
            service = capability.service
            if service is None:
                bindings[name] = {"service": None, "alias": None, "connection": None, "limits": {}}
                continue
            chosen = step.get("connection")
            if chosen is not None and chosen not in aliases:
                self.add(step_id, "connection", f"connection '{chosen}' is not defined in the flow")
                continue
            if chosen is not None and aliases[chosen].get("service") == service:
                alias = chosen
            else:
                candidates = sorted(a for a, s in aliases.items() if s.get("service") == service)
                if not candidates:
                    self.add(
                        step_id,
                        field,
                        f"capability '{name}' needs {connections.a_connection(service)}: "
                        "choose one in the step's Connection picker",
                    )
                    continue
                if len(candidates) > 1:
                    self.add(
                        step_id,
                        "connection",
                        f"capability '{name}' could use connection "
                        + " or ".join(f"'{c}'" for c in candidates)
                        + ': name one with "connection"',
                    )
                    continue
                alias = candidates[0]
            connection_id = aliases[alias].get("connection")
            where = f"connections.{alias}"
            if connection_id is None:
                self.add(
                    step_id,
                    where,
                    f"capability '{name}' needs {connections.a_connection(service)}, and the "
                    f"flow's connection '{alias}' is not chosen yet: choose one in the step's "
                    "Connection picker",
                )
                continue
            if connection_id not in self.connections:
                found = connections.source().services(self.owner, [connection_id])
                self.connections[connection_id] = found.get(connection_id)
            connection_service = self.connections[connection_id]
            if connection_service is None:
                self.add(
                    step_id,
                    where,
                    f"connection '{alias}' refers to a connection that is not one of yours",
                )
                continue
            if connection_service != service:
                self.add(
                    step_id,
                    where,
                    f"connection '{alias}' is a {connection_service} connection, but capability "
                    f"'{name}' needs {service}",
                )
                continue
            bindings[name] = {
                "service": service,
                "alias": alias,
                "connection": connection_id,
                "limits": aliases[alias].get("limits") or {},
            }
        return bindings

    # steps -----------------------------------------------------------------------------------
    def compile_code(
        self,
        step: dict[str, Any],
        block: catalog.Block,
        config: dict,
        earlier: list[str],
        compiled: dict,
    ) -> None:
        from flows import sandbox

        step_id = step["id"]
        try:
            limits = sandbox.Limits.from_overrides(step.get("limits") or None)
            compiled["limits"] = dataclasses.asdict(limits)
        except ValueError as exc:
            self.add(step_id, "limits", str(exc))
        if block.kind == "code.python" and isinstance(config.get("source"), str):
            problem = sandbox.check_python_syntax(config["source"], step_id)
            if problem:
                self.issues.append(Issue(problem, step_id, "source"))
            self.check_references(
                step_id, "source", templating.python_references(config["source"]), earlier
            )
        if block.kind == "code.wasm" and isinstance(config.get("artifact"), str):
            digest = config["artifact"].strip().lower()
            artifact = Artifact.objects.owned_by(self.owner).filter(digest=digest).first()
            if artifact is None:
                self.add(
                    step_id,
                    "artifact",
                    f"module '{digest[:12]}' is not among your uploaded modules",
                )
                return
            try:
                needed = sandbox.module_capabilities(sandbox.load_artifact(digest))
            except (sandbox.SandboxError, OSError) as exc:
                self.add(step_id, "artifact", f"module '{digest[:12]}' cannot be read: {exc}")
                return
            compiled["artifact"] = digest
            for name in needed:
                if name not in compiled["grants"]:
                    self.add(
                        step_id,
                        "grants",
                        f"the module needs capability '{name}', which this step does not grant",
                    )

    def compile_step(
        self, step: dict[str, Any], position: int, earlier: list[str]
    ) -> dict[str, Any] | None:
        step_id = step["id"]
        block = catalog.get_block(step["kind"])
        if block is None:
            self.add(step_id, "kind", f"unknown block '{step['kind']}'")
            return None
        if block.category == "trigger":
            self.add(step_id, "kind", f"'{block.kind}' is a trigger and cannot be a step")
            return None
        config = self.compile_config(step_id, block, step.get("config") or {}, earlier)
        is_code = block.category == "code"
        grants = list(dict.fromkeys(step.get("grants") or []))
        if grants and not is_code:
            self.add(
                step_id,
                "grants",
                "only code steps take grants: this block's capabilities come with its kind",
            )
        if step.get("limits") and not is_code:
            self.add(step_id, "limits", "limits apply to code steps only")
        retry = step.get("retry") or {}
        compiled: dict[str, Any] = {
            "id": step_id,
            "kind": block.kind,
            "category": block.category,
            "position": position,
            "config": config,
            "templated": [p.name for p in block.params if p.templated],
            "grants": grants if is_code else catalog.block_capabilities(block, config),
            "limit_overrides": step.get("limits") or {},
            "limits": None,
            "artifact": None,
            "retry": {
                "max_attempts": retry.get("max_attempts", django_settings.FLOWS_STEP_MAX_ATTEMPTS),
                "backoff_s": retry.get("backoff_s", django_settings.FLOWS_STEP_RETRY_BACKOFF_S),
            },
        }
        if is_code:
            self.compile_code(step, block, config, earlier, compiled)
        elif block.limits_from is not None:
            compiled["limits"] = block.limits_from(config)
        elif block.execute is None and not block.control:
            self.add(step_id, "kind", f"block '{block.kind}' cannot run as a step")
        self.check_flow_block(step, block, config)
        compiled["bindings"] = self.bind(step, compiled["grants"], "grants" if is_code else "kind")
        return compiled

    def check_flow_block(self, step: dict[str, Any], block: catalog.Block, config: dict) -> None:
        """The checks of the flow language's blocks that their params alone cannot express."""
        step_id = step["id"]
        if block.check is not None:
            for field, problem in block.check(config, self.owner):
                self.add(step_id, field, problem)
        if block.kind == "logic.switch" and "cases" in config:
            for problem in switch_case_problems(config["cases"]):
                self.add(step_id, "cases", problem)
        if block.kind == "logic.foreach":
            wanted = config.get("concurrency", 1)
            cap = django_settings.FLOWS_FOREACH_MAX_CONCURRENCY
            if isinstance(wanted, int) and not 1 <= wanted <= cap:
                self.add(step_id, "concurrency", f"items at once must be 1 to {cap}")
        if block.kind == "logic.wait" and not (config.get("seconds") or config.get("until")):
            self.add(step_id, "seconds", "give the seconds to wait, or a time to wait until")
        if block.kind == "http.respond":
            if self.document["trigger"].get("kind") != "trigger.webhook":
                self.add(
                    step_id,
                    "kind",
                    "only a flow triggered by a webhook has a caller to respond to",
                )
            if step.get("parent"):
                self.add(step_id, "parent", "a response cannot be sent from inside a loop")
        if block.kind == "flow.call" and isinstance(config.get("flow"), int):
            self.check_called_flow(step_id, config)

    def check_called_flow(self, step_id: str, config: dict) -> None:
        target = (
            Flow.objects.owned_by(self.owner).filter(pk=config["flow"]).first()
            if self.owner is not None
            else None
        )
        if target is None:
            self.add(step_id, "flow", f"flow {config['flow']} is not one of your flows")
            return
        version = str(config.get("version") or "latest").strip()
        if target.version_named(version) is not None:
            return
        if version == "latest":
            self.add(step_id, "flow", f"flow '{target.name}' is not deployed yet")
        else:
            self.add(step_id, "version", f"flow '{target.name}' has no version {version!r}")

    def compile_concurrency(self) -> dict[str, Any] | None:
        spec = self.document.get("concurrency")
        if spec is None:
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or not spec["key"]:
            self.add(None, "concurrency", 'concurrency needs a "key" template')
            return None
        mode = spec.get("mode", "queue")
        limit = spec.get("limit", 1)
        if mode not in CONCURRENCY_MODES:
            self.add(
                None, "concurrency", "concurrency mode must be " + ", ".join(CONCURRENCY_MODES)
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            self.add(None, "concurrency", "concurrency limit must be 1 to 100")
        refs = templating.References()
        try:
            templating.check_template(spec["key"], refs)
        except templating.TemplateError as exc:
            self.add(None, "concurrency", f"concurrency key: {exc}")
        if refs.steps:
            self.add(None, "concurrency", "the concurrency key may use the event and settings only")
        return {"key": spec["key"], "mode": mode, "limit": limit}

    def compile_on_error(self) -> dict[str, Any] | None:
        spec = self.document.get("on_error")
        if spec is None:
            return None
        target = spec.get("flow") if isinstance(spec, dict) else None
        if isinstance(target, bool) or not isinstance(target, int):
            self.add(None, "on_error", 'on_error must be {"flow": <the id of one of your flows>}')
            return None
        if self.owner is not None and not Flow.objects.owned_by(self.owner).filter(pk=target):
            self.add(None, "on_error", f"on_error: flow {target} is not one of your flows")
        return {"flow": target}

    def compile(self) -> dict[str, Any]:
        self.issues.extend(check_structure(self.document))
        if self.issues:
            raise CompileError(self.issues)
        self.compile_settings()
        self.step_ids = {s["id"] for s in self.document.get("steps", [])}
        shape = graph.analyse(self.document)
        trigger = self.compile_trigger()
        compiled_steps: dict[str, dict[str, Any]] = {}
        positions = {step_id: i for i, step_id in enumerate(shape.order)}
        for step in self.document.get("steps", []):
            step_id = step["id"]
            earlier = shape.ancestors.get(step_id, set())
            compiled = self.compile_step(step, positions.get(step_id, 0), earlier)
            if compiled is not None:
                compiled["parent"] = shape.parent.get(step_id) or None
                compiled_steps[step_id] = compiled
        self.issues.extend(shape.issues)
        concurrency = self.compile_concurrency()
        on_error = self.compile_on_error()
        for name in sorted(self.missing_settings - self.reported_settings):
            self.issues.append(Issue(f"setting '{name}' is required", None, f"settings.{name}"))
        if self.issues:
            raise CompileError(self.issues)
        steps = [compiled_steps[step_id] for step_id in shape.order]
        return {
            "schema": PLAN_SCHEMA,
            "document_schema": SCHEMA,
            "document_hash": document_hash(self.document),
            "trigger": trigger,
            "settings": self.settings,
            "steps": steps,
            "edges": [list(e) for e in shape.edges],
            "responds": any(s["kind"] == "http.respond" for s in steps),
            "concurrency": concurrency,
            "on_error": on_error,
            "time_limit_s": run_time_limit(steps),
        }


def step_time_limit(step: dict[str, Any]) -> float:
    """The longest one step may take, counting its retries and their backoff."""
    once = (step.get("limits") or {}).get("timeout_s") or django_settings.FLOWS_BLOCK_TIMEOUT_S
    attempts = step["retry"]["max_attempts"]
    backoff = sum(
        min(step["retry"]["backoff_s"] * 2**i, django_settings.FLOWS_STEP_RETRY_BACKOFF_MAX_S)
        for i in range(attempts - 1)
    )
    return once * attempts + backoff


def run_time_limit(steps: list[dict[str, Any]]) -> int:
    """Every step's limit added up (steps inside loops count LOOP_TIME_FACTOR times), capped
    by the longest a run may take at once (a wait parks it and starts the clock again)."""
    total = sum(step_time_limit(s) * (LOOP_TIME_FACTOR if s.get("parent") else 1) for s in steps)
    return int(min(total, django_settings.FLOWS_RUN_MAX_TIME_LIMIT_S) + RUN_OVERHEAD_S)


def compile_document(document: dict, owner) -> dict:
    """Validate and compile; raises CompileError listing every problem found."""
    return _Compiler(document, owner).compile()


def _next_number(flow: Flow) -> int:
    return (flow.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def _store_version(flow: Flow, document: dict, plan: dict, author, note: str) -> FlowVersion:
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        version = FlowVersion.objects.create(
            flow=locked,
            number=_next_number(locked),
            document=document,
            plan=plan,
            content_hash=plan["document_hash"],
            author=author,
            note=note[:200],
        )
        flow.current_version = version
        if flow.status == Flow.Status.DRAFT:
            flow.status = Flow.Status.ACTIVE
        flow.save(update_fields=["current_version", "status", "document", "updated_at"])
    return version


def deploy(flow: Flow, author, note: str = "") -> FlowVersion:
    """Compile the flow's draft and store it as its next version, which new runs then use."""
    plan = compile_document(flow.document, flow.owner)
    return _store_version(flow, flow.document, plan, author, note)


def rollback(flow: Flow, version_number: int, author) -> FlowVersion:
    """Deploy the document of an earlier version again, as a new version (and make it the draft)."""
    target = flow.versions.filter(number=version_number).first()
    if target is None:
        raise ValueError(f"flow '{flow.slug}' has no version {version_number}")
    plan = compile_document(target.document, flow.owner)
    flow.document = target.document
    return _store_version(
        flow, target.document, plan, author, f"Rollback to version {version_number}"
    )
