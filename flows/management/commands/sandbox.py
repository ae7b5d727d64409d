"""The sandbox's maintenance and local tools.

python manage.py sandbox build [--force]
python manage.py sandbox run-step STEP.py|MODULE.wasm [--event EVENT.json] [--grant CAP ...]
                                 [--timeout SECONDS] [--memory MIB] [--step NAME]
python manage.py sandbox declare MODULE.wasm CAPABILITY ... [--output OUT.wasm]
python manage.py sandbox upload MODULE.wasm --owner USERNAME [--name NAME]

Local runs have no flow: their kv.get, kv.set and kv.delete use a store that lives for the run,
filled from --kv FILE.json (an object of keys and values) when given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows import capabilities as capability_registry
from flows.capabilities import CapabilityContext, CapabilityError
from flows.sandbox import Limits, SandboxError, run_python_step, run_wasm_step
from flows.sandbox.artifacts import CAPABILITIES_SECTION, declare_capabilities
from flows.sandbox.build import build_runner

KV_CAPABILITIES = ("kv.get", "kv.set", "kv.delete")


def local_kv(store: dict[str, Any]) -> dict[str, Any]:
    """kv.get, kv.set and kv.delete over a dict that lives for one local run."""

    def key(payload: Any) -> str:
        if not isinstance(payload.get("key"), str) or not payload["key"]:
            raise CapabilityError('the payload needs a "key" string')
        return payload["key"]

    def set_value(payload: Any) -> bool:
        store[key(payload)] = payload.get("value")
        return True

    return {
        "kv.get": lambda payload: store.get(key(payload)),
        "kv.set": set_value,
        "kv.delete": lambda payload: store.pop(key(payload), None) is not None,
    }


def local_capability(name: str, step: str, log: Any) -> Any:
    """A granted capability for a local run: the registered handler, without a connection."""
    capability = capability_registry.get(name)
    if capability is None:

        def unavailable(payload: Any) -> Any:
            raise CapabilityError(f"capability '{name}' is not available to local runs")

        return unavailable
    context = CapabilityContext(flow_id=0, run_id=None, step_id=step, log=log)
    return lambda payload: capability.handler(context, payload)


class Command(BaseCommand):
    help = (
        "Builds the Python step runner, runs a step locally, or declares a module's capabilities."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        build = actions.add_parser("build", help="Build the Python step runner (a no-op if fresh).")
        build.add_argument("--force", action="store_true", help="Rebuild even if up to date.")

        run = actions.add_parser("run-step", help="Run a Python step or a Wasm module locally.")
        run.add_argument("path", help="A .py step (defining main(event, ctx)) or a .wasm module.")
        run.add_argument("--event", help="A JSON file with the event (default: {}).")
        run.add_argument(
            "--grant",
            action="append",
            default=[],
            metavar="CAPABILITY",
            help="Grant a capability (repeat for several).",
        )
        run.add_argument("--timeout", type=float, metavar="SECONDS", help="Wall-clock limit.")
        run.add_argument("--memory", type=int, metavar="MIB", help="Memory limit.")
        run.add_argument("--step", help="The step's name in messages (default: the file's stem).")
        run.add_argument(
            "--kv", metavar="FILE.json", help="Starting entries of the run's key-value store."
        )

        declare = actions.add_parser(
            "declare", help=f"Write the {CAPABILITIES_SECTION} section of a Wasm module."
        )
        declare.add_argument("module", help="The .wasm module.")
        declare.add_argument("capabilities", nargs="+", metavar="CAPABILITY")
        declare.add_argument("--output", help="Write here instead of changing the module.")

        upload = actions.add_parser(
            "upload",
            help="Check a Wasm module and add it to a user's modules, as the builder does.",
        )
        upload.add_argument("module", help="The .wasm module.")
        upload.add_argument("--owner", required=True, help="The username it is uploaded for.")
        upload.add_argument("--name", help="Its name in the builder (default: the file's name).")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "build":
            self.build(options)
        elif action == "run-step":
            self.run_step(options)
        elif action == "upload":
            self.upload(options)
        else:
            self.declare(options)

    def build(self, options: dict[str, Any]) -> None:
        def out(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            build_runner(force=options["force"], out=out)
        except SandboxError as exc:
            raise CommandError(str(exc)) from exc

    def run_step(self, options: dict[str, Any]) -> None:
        path = Path(options["path"])
        step = options["step"] or path.stem
        try:
            code = path.read_bytes()
            event = read_json(options["event"], {})
            entries = read_json(options["kv"], {})
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        if not isinstance(entries, dict):
            raise CommandError(f"{options['kv']} must hold a JSON object of keys and values")
        overrides = {
            name: value
            for name, value in (
                ("timeout_s", options["timeout"]),
                ("memory_mib", options["memory"]),
            )
            if value is not None
        }
        try:
            limits = Limits.from_overrides(overrides)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        def on_log(level: str, message: str) -> None:
            self.stderr.write(f"[{level}] {message}")
            self.stderr.flush()

        kv = local_kv(entries)
        granted = {
            name: kv[name] if name in kv else local_capability(name, step, on_log)
            for name in options["grant"]
        }
        # A failing capability reaches the step as its error; its traceback is noise here.
        logging.getLogger("flows.sandbox").setLevel(logging.ERROR)
        common = {"step": step, "capabilities": granted, "limits": limits, "on_log": on_log}
        if path.suffix == ".wasm":
            result = run_wasm_step(code, event, **common)
        else:
            try:
                source = code.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CommandError(f"{path} is not UTF-8 text: {exc}") from exc
            result = run_python_step(source, event, **common)
        if not result.ok:
            raise CommandError(result.error)
        self.stdout.write(json.dumps(result.output, indent=2, ensure_ascii=False))

    def declare(self, options: dict[str, Any]) -> None:
        source = Path(options["module"])
        try:
            data = declare_capabilities(source.read_bytes(), options["capabilities"])
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror}") from exc
        except SandboxError as exc:
            raise CommandError(f"{source}: {exc}") from exc
        target = Path(options["output"] or source)
        target.write_bytes(data)
        names = ", ".join(dict.fromkeys(options["capabilities"]))
        self.stdout.write(f"{target} declares the capabilities {names}")

    def upload(self, options: dict[str, Any]) -> None:
        from flows.modules import upload_module

        source = Path(options["module"])
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"there is no user named {options['owner']!r}")
        try:
            artifact = upload_module(owner, options["name"] or source.name, source.read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror}") from exc
        except SandboxError as exc:
            raise CommandError(f"{source} was not uploaded: {exc}") from exc
        capabilities = ", ".join(artifact.imports) or "none"
        self.stdout.write(
            f"Uploaded {artifact.name} for {owner.username}: sha256 {artifact.digest}, "
            f"{artifact.size:,} bytes; capabilities it calls: {capabilities}"
        )


def read_json(path: str | None, default: Any) -> Any:
    if not path:
        return default
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from exc
