"""`manage.py flows export|import|deploy|run`: flows from the command line.

FLOW is a flow id or owner/slug. `run` prints the run's log lines as they are written and exits
with status 1 when the run fails.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flows.compiler import CompileError, deploy
from flows.document import export_document, import_document
from flows.engine import FlowNotDeployed, FlowPaused, start_run
from flows.models import Flow, LogLine, Run
from integrations import jsonlimits

POLL_S = 0.1


def find_flow(ref: str) -> Flow:
    if ref.isdigit():
        flow = Flow.objects.filter(pk=int(ref)).first()
    elif "/" in ref:
        username, _, slug = ref.partition("/")
        flow = Flow.objects.filter(owner__username=username, slug=slug).first()
    else:
        raise CommandError(f"'{ref}' is neither a flow id nor owner/slug.")
    if flow is None:
        raise CommandError(f"No flow '{ref}'.")
    return flow


def _compile_errors(exc: CompileError) -> CommandError:
    return CommandError("the flow does not compile:\n" + "\n".join(f"  - {e}" for e in exc.errors))


def read_json_file(path: str) -> Any:
    """The JSON in `path`, or a CommandError that says what is wrong with the file."""
    try:
        return jsonlimits.loads(Path(path).read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text.") from None
    except ValueError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}") from None


class Command(BaseCommand):
    help = "Export, import, deploy and run flows."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Print a flow's document (no secrets).")
        export.add_argument("flow")
        export.add_argument("-o", "--output", help="Write to this file instead.")
        imp = sub.add_parser("import", help="Create a draft flow from a document file.")
        imp.add_argument("file")
        imp.add_argument("--owner", required=True, help="Username of the new flow's owner.")
        imp.add_argument("--name", default="", help="Name of the new flow.")
        dep = sub.add_parser("deploy", help="Compile the draft and make it the running version.")
        dep.add_argument("flow")
        dep.add_argument("--note", default="")
        run = sub.add_parser("run", help="Run a flow and print its logs as they come.")
        run.add_argument("flow")
        run.add_argument("--event", help="A JSON file holding the event.")
        run.add_argument(
            "--draft", action="store_true", help="Run the draft, not the deployed version."
        )
        run.add_argument("--timeout", type=float, default=3600.0)

    def handle(self, *args, **options) -> None:
        getattr(self, "handle_" + options["action"])(options)

    def handle_export(self, options) -> None:
        flow = find_flow(options["flow"])
        text = json.dumps(export_document(flow.document), indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stdout.write(f"Exported '{flow.name}' to {options['output']}")
        else:
            self.stdout.write(text, ending="")

    def handle_import(self, options) -> None:
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user '{options['owner']}'.")
        document = read_json_file(options["file"])
        try:
            flow = import_document(document, owner, options["name"])
        except ValueError as exc:
            raise CommandError(f"{options['file']} is not a flow document: {exc}") from None
        self.stdout.write(f"Imported flow {flow.pk} as {owner.username}/{flow.slug}")

    def handle_deploy(self, options) -> None:
        flow = find_flow(options["flow"])
        try:
            version = deploy(flow, None, options["note"])
        except CompileError as exc:
            raise _compile_errors(exc) from None
        self.stdout.write(f"Deployed {flow.owner.username}/{flow.slug} version {version.number}")

    def handle_run(self, options) -> None:
        flow = find_flow(options["flow"])
        event = {}
        if options["event"]:
            event = read_json_file(options["event"])
        elif flow.document.get("trigger", {}).get("kind") == "trigger.manual":
            event = flow.document["trigger"].get("config", {}).get("sample_event") or {}
        try:
            run, _ = start_run(flow, trigger="manual", event=event, draft=options["draft"])
        except CompileError as exc:
            raise _compile_errors(exc) from None
        except (FlowNotDeployed, FlowPaused) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Run {run.pk} of {flow.owner.username}/{flow.slug}")
        run = self.follow(run, options["timeout"])
        if run.status == Run.Status.FAILED:
            self.stderr.write(f"Run {run.pk} failed: {run.error}")
            sys.exit(1)
        self.stdout.write(f"Run {run.pk} {run.status}")
        if run.output is not None:
            self.stdout.write(json.dumps(run.output, indent=2, ensure_ascii=False))

    def follow(self, run: Run, timeout: float) -> Run:
        """Print log lines as they are saved until the run finishes."""
        last_seq, deadline = 0, time.monotonic() + timeout
        while True:
            run.refresh_from_db()
            for line in LogLine.objects.filter(run=run, seq__gt=last_seq).order_by("seq"):
                last_seq = line.seq
                where = line.step_id or "run"
                self.stdout.write(f"{line.time:%H:%M:%S} {where} {line.level}: {line.message}")
            if run.is_finished:
                return run
            if time.monotonic() > deadline:
                raise CommandError(f"run {run.pk} did not finish within {timeout:g} s")
            time.sleep(POLL_S)
