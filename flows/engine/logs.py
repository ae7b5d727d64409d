"""Run events: numbered log lines (redacted, saved, then sent live), step and run status changes.

Every event goes to the run's group (`run-<id>`) and the flow's group (`flow-<id>`) as JSON with a
server-rendered `html` fragment the browser can append. A log line is saved before it is sent,
so a client that reads the saved lines after subscribing misses none (see flows.consumers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from flows.engine import answers, broadcast
from flows.models import LogLine, Run, StepRun

LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
}
MAX_MESSAGE_CHARS = 16_384
# The longest error a run or step run keeps.
MAX_ERROR_CHARS = 8000
REDACTED = "[redacted]"
# Secrets shorter than this would redact ordinary words; they are too weak to be worth leaking less.
MIN_SECRET_CHARS = 4


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def flow_group(flow_id: int) -> str:
    return f"flow-{flow_id}"


class Redactor:
    """Replaces every known secret value in a text with [redacted]."""

    def __init__(self, secrets: Iterable[Any] = ()):
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """Every string inside a JSON value redacted (a step's input and output)."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def log_line_html(run_id: int, seq: int, step_id: str, level: str, message: str, time) -> str:
    """One log line as the run page shows it: the stored lines and the live ones alike."""
    local = timezone.localtime(time)
    return format_html(
        '<div class="log-line log-{}" id="run-{}-log-{}" data-seq="{}"><time datetime="{}">{}'
        '</time> <span class="log-step">{}</span> <span class="log-level">{}</span> '
        '<span class="log-message">{}</span></div>',
        level,
        run_id,
        seq,
        seq,
        time.isoformat(),
        local.strftime("%H:%M:%S.%f")[:12],
        step_id or "run",
        level,
        message,
    )


def step_status_html(step: dict[str, Any]) -> str:
    """A step's status line, swapped in place of the previous one (htmx out-of-band)."""
    extra = SafeString()  # so that the fragments added to it are not escaped again
    if step["attempt"] > 1:
        extra += format_html(' <span class="step-attempt">attempt {}</span>', step["attempt"])
    if step["status"] != StepRun.Status.RUNNING:
        extra += format_html(
            ' <span class="step-duration">{} ms</span>', f"{step['duration_ms']:.1f}"
        )
    if step["error"]:
        extra += format_html(' <span class="step-error">{}</span>', step["error"])
    return format_html(
        '<div id="run-{}-step-{}" hx-swap-oob="true" class="step-status step-{}" data-step="{}" '
        'data-status="{}"><span class="step-id">{}</span> <span class="step-kind">{}</span> '
        '<span class="step-state">{}</span>{}</div>',
        step["run"],
        step["step"],
        step["status"],
        step["step"],
        step["status"],
        step["step"],
        step["kind"],
        step["status"],
        extra,
    )


def log_event(run_id: int, line: LogLine) -> dict[str, Any]:
    html = log_line_html(run_id, line.seq, line.step_id, line.level, line.message, line.time)
    return {
        "type": "log",
        "run": run_id,
        "seq": line.seq,
        "step": line.step_id,
        "level": line.level,
        "message": line.message,
        "time": line.time.isoformat(),
        "html": format_html('<div hx-swap-oob="beforeend:#run-{}-log">{}</div>', run_id, html),
    }


def step_event(step: StepRun) -> dict[str, Any]:
    event = {
        "type": "step",
        "run": step.run_id,
        "step": step.step_id,
        # The loop item it ran for ("each[3]"; "" outside loops) and the port it left on.
        "scope": step.scope,
        "port": step.port,
        "kind": step.kind,
        "position": step.position,
        "status": step.status,
        "attempt": step.attempt,
        "duration_ms": round(step.duration_ms, 3),
        "fuel_used": step.fuel_used,
        "error": step.error,
    }
    event["html"] = step_status_html(event)
    return event


def trace_entry_html(row: StepRun, entry: dict[str, Any], seq: int) -> str:
    """One entry of a step's trace (an agent's model turn or tool call) as the run page shows
    it: the stored entries and the live ones alike."""
    context = {
        "entry": entry,
        "seq": seq,
        "row_id": row.pk or 0,
        "arguments": _as_text(entry.get("arguments")),
        "result": _as_text(entry.get("result")),
    }
    return render_to_string("flows/_trace_entry.html", context)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def trace_event(row: StepRun, entry: dict[str, Any], seq: int) -> dict[str, Any]:
    html = trace_entry_html(row, entry, seq)
    return {
        "type": "trace",
        "run": row.run_id,
        "step": row.step_id,
        "scope": row.scope,
        "seq": seq,
        "entry": entry,
        "html": format_html(
            '<div hx-swap-oob="beforeend:#run-{}-trace-{}">{}</div>',
            row.run_id,
            row.step_id,
            SafeString(html),
        ),
    }


def run_event(run: Run) -> dict[str, Any]:
    return {
        "type": "run",
        "run": run.pk,
        "flow": run.flow_id,
        "status": run.status,
        "error": run.error,
        "attempts": run.attempts,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def send(run: Run, *events: dict[str, Any]) -> None:
    """Send events of `run` to its group and its flow's group, as one message; when the run has
    an answer for a caller who waits (it ended, or a respond step ran), hand it over too."""
    broadcast.send((run_group(run.pk), flow_group(run.flow_id)), list(events))
    if any(_answers(event) for event in events):
        answers.notify(run)


def _answers(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    return kind == "response" or (kind == "run" and event.get("status") in Run.FINISHED)


class RunEvents:
    """The events of a run being executed. Those that follow each other within microseconds
    (the run starts, a logic step is done, the next step starts) are held back and leave as one
    message when something may take time: a step that runs code starts, a line is logged, the
    run ends. Watchers see the same events in the same order, for a third of the messages."""

    def __init__(self, run: Run):
        self.run = run
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.pending.append(event)

    def flush(self, *more: dict[str, Any]) -> None:
        with self.lock:
            events = [*self.pending, *more]
            self.pending.clear()
            if events:
                send(self.run, *events)


class RunLog:
    """Appends log lines to one run. Thread-safe: capability calls may log from other threads."""

    def __init__(
        self,
        run: Run,
        redact: Callable[[str], str],
        events: RunEvents,
    ):
        self.run = run
        self.redact = redact
        self.events = events
        self.lock = threading.Lock()
        # Only an earlier attempt of the run, or its part before it parked, can have logged.
        first = run.attempts <= 1 and run.resume_at is None
        self.seq = 0 if first else LogLine.objects.filter(run=run).aggregate(m=Max("seq"))["m"] or 0
        self.per_step: dict[str, int] = {}
        self.capped: set[tuple[str, str]] = set()

    def over_limit(self, step_id: str) -> tuple[int, str]:
        """(the limit, "run" or "step") once the run or this step wrote as many lines as they
        may; (0, "") before. Counts the line about to be written."""
        if self.seq >= settings.FLOWS_RUN_LOG_LINES_MAX:
            return settings.FLOWS_RUN_LOG_LINES_MAX, "run"
        written = self.per_step.get(step_id, 0)
        if step_id and written >= settings.FLOWS_STEP_LOG_LINES_MAX:
            return settings.FLOWS_STEP_LOG_LINES_MAX, "step"
        self.per_step[step_id] = written + 1
        return 0, ""

    def write(self, step_id: str, level: str, message: str) -> None:
        level = LEVELS.get(str(level).lower(), "info")
        text = self.redact(str(message))
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + f"… [{len(text) - MAX_MESSAGE_CHARS} characters cut]"
        with self.lock:
            limit, where = self.over_limit(step_id)
            if limit:
                if (step_id, where) in self.capped:
                    return
                self.capped.add((step_id, where))
                level = "warning"
                text = f"further log lines of this {where} are dropped: it wrote {limit:,}"
            self.seq += 1
            line = LogLine.objects.create(
                run=self.run,
                seq=self.seq,
                step_id=step_id,
                level=level,
                message=text,
                time=timezone.now(),
            )
            # With the events held back before it, so they keep their order.
            self.events.flush(log_event(self.run.pk, line))

    def for_step(self, step_id: str) -> Callable[[str, str], None]:
        return lambda level, message: self.write(step_id, level, message)
