"""Walk a plan's graph for one run: branches, parallel paths and joins, loops, error paths, waits.

One thread (the run's coordinator) owns the run's records: it decides what is ready, writes
every step run and log line, and parks or finishes the run. Steps that can overlap (parallel
paths, a loop's items) execute on a small pool of threads and hand their outcome back through a
queue; a step alone runs on the coordinator itself, so a linear flow costs no thread hop. Database
work asked for from a step thread (log lines, the key-value store) is carried out by the
coordinator, so a run uses one database connection whatever runs in parallel.

Edges are (from, port, to). A step runs once every edge into it is settled and at least one was
taken; when none was taken it is recorded as skipped with the reason (dead path elimination), so
paths not taken never block a join. Every finished step is on record with the port it left on
and the loop item it belonged to ("files[3]"), so a resumed run (after a wait, a retry's backoff
or a lost worker) replays what is done and runs only the rest.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows import capabilities as capability_registry
from flows import catalog, templating
from flows.capabilities import CapabilityError, step_deadline
from flows.catalog import ERROR_PORT
from flows.document import OUT, TRIGGER
from flows.engine import logs, rows
from flows.engine.steps import (
    StepHooks,
    StepOutcome,
    Usage,
    capability_callables,
    render_config,
    run_step,
)
from flows.models import Run, StepRun

if TYPE_CHECKING:
    from flows.engine.executor import RunExecution

DONE = {StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED}
# What finishing a step run changes of the row saved when it started.
FINISHED_FIELDS = [
    "status",
    "port",
    "input",
    "output",
    "error",
    "duration_ms",
    "fuel_used",
    "tokens",
    "trace",
    "resume_at",
    "finished_at",
]


def plan_edges(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The plan's edges; a plan of the first schema ran its steps in order: a chain."""
    if "edges" in plan:
        return [tuple(e) for e in plan["edges"]]
    ids = [s["id"] for s in plan.get("steps", [])]
    return [(a, OUT, b) for a, b in zip([TRIGGER, *ids], ids, strict=False)]


@dataclass
class Frame:
    """The steps of one scope being walked: the top level, or one item of a loop."""

    key: str  # "" at the top level, "files[3]" for item 3 of loop `files`
    parent: Frame | None = None
    loop: Loop | None = None
    index: int = 0
    item: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    settled: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)  # "ready", "running", "done", "parked"
    ports: dict[str, str] = field(default_factory=dict)  # the port each finished step left on
    active: int = 0  # steps queued, running or parked
    error: str = ""  # why the frame failed
    last: Any = None

    def visible(self) -> dict[str, Any]:
        outer = self.parent.visible() if self.parent else {}
        return {**outer, **self.outputs}


@dataclass
class Loop:
    frame: Frame  # the frame the loop step sits in
    step: str
    row: StepRun
    items: list[Any]
    concurrency: int
    continue_on_error: bool
    results: list[Any] = field(default_factory=list)
    started: int = 0
    active: int = 0
    failures: int = 0
    error: str = ""


class Walker:
    def __init__(self, execution: RunExecution):
        self.x = execution
        plan = execution.plan
        self.steps = {s["id"]: s for s in plan.get("steps", [])}
        self.edges = plan_edges(plan)
        self.incoming: dict[str, list[tuple[str, str, str]]] = {s: [] for s in self.steps}
        self.outgoing: dict[str, list[tuple[str, str, str]]] = {s: [] for s in self.steps}
        self.outgoing[TRIGGER] = []
        for edge in self.edges:
            self.incoming[edge[2]].append(edge)
            self.outgoing[edge[0]].append(edge)
        self.ready: list[tuple[Frame, str]] = []
        self.messages: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False
        self.pool: ThreadPoolExecutor | None = None
        self.running = 0
        self.coordinator = threading.get_ident()
        self.rows: dict[tuple[str, str], StepRun] = {}  # finished or waiting step runs, replayed
        self.tries: dict[tuple[str, str], int] = {}  # attempts made so far, by scope and step
        self.parked: list[datetime] = []
        self.stop: tuple[str, str] | None = None  # (run status, error) once the run must end
        self.had_errors = False
        self.output: Any = None
        self.watch_cancel = (plan.get("concurrency") or {}).get("mode") == "cancel_in_progress"
        self.pinned = plan.get("pinned") or {}  # builder test runs: outputs used, steps not run

    # the run ---------------------------------------------------------------------------------
    def load_history(self) -> int:
        """Step runs of earlier attempts (or of the run before it parked): what to replay."""
        kept = 0
        for row in StepRun.objects.filter(run=self.x.run).order_by("position", "attempt"):
            key = (row.scope, row.step_id)
            if row.status == StepRun.Status.FAILED and row.port != ERROR_PORT:
                self.tries[key] = self.tries.get(key, 0) + 1
                self.rows.pop(key, None)
                continue
            self.tries[key] = max(self.tries.get(key, 0), row.attempt)
            if row.status in DONE or row.status == StepRun.Status.WAITING or row.port:
                self.rows[key] = row
                kept += row.status != StepRun.Status.WAITING
        return kept

    def walk(self) -> tuple[str, str, Any, datetime | None]:
        """Run the graph; returns (status, error, output, resume_at)."""
        top = Frame(key="")
        self.enter(top, TRIGGER, OUT)
        try:
            while True:
                if self.ready and self.stop is None:
                    batch, self.ready = self.ready, []
                    alone = len(batch) == 1 and self.running == 0
                    for frame, step_id in batch:
                        self.launch(frame, step_id, inline=alone)
                    continue
                if self.running == 0:
                    break
                self.handle(self.messages.get())
        finally:
            self.close()
        if self.stop is not None:
            return self.stop[0], self.stop[1], self.output, None
        if top.error:
            return Run.Status.FAILED, top.error, self.output, None
        if self.parked:
            return Run.Status.WAITING, "", self.output, min(self.parked)
        status = Run.Status.SUCCEEDED_WITH_ERRORS if self.had_errors else Run.Status.SUCCEEDED
        return status, "", self.output, None

    def handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "call":
            _, fn, future = message
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - the step thread re-raises it
                future.set_exception(exc)
            return
        _, frame, step_id, row, outcome = message
        self.running -= 1
        self.finish_step(frame, step_id, row, outcome)

    def on_coordinator(self, fn):
        """Call `fn` on the coordinator (which owns the database connection) and wait."""
        if threading.get_ident() == self.coordinator:
            return fn()
        future: Future = Future()
        with self.lock:
            if self.closed:
                raise RuntimeError("the run this step belongs to has stopped")
            self.messages.put(("call", fn, future))
        return future.result()

    def close(self) -> None:
        """The walk is over (normally nothing runs by then; after a time limit, steps may still
        run): steps still running get an error for anything they ask of the coordinator."""
        with self.lock:
            self.closed = True
        while not self.messages.empty():
            message = self.messages.get_nowait()
            if message[0] == "call":
                message[2].set_exception(RuntimeError("the run this step belongs to has stopped"))
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # frames and edges ------------------------------------------------------------------------
    def enter(self, frame: Frame, source: str, port: str) -> None:
        """Start a frame: `source` (the trigger, or the loop step) left on `port`."""
        for edge in self.outgoing[source]:
            if self.in_frame(frame, edge[2]):
                self.settle(frame, edge, edge[1] == port)

    def in_frame(self, frame: Frame, step_id: str) -> bool:
        parent = self.steps[step_id].get("parent")
        return (parent or None) == (frame.loop.step if frame.loop else None)

    def settle(self, frame: Frame, edge: tuple[str, str, str], taken: bool) -> None:
        frame.settled[edge] = taken
        target = edge[2]
        if target in frame.state:
            return
        inputs = self.incoming[target]
        if any(e not in frame.settled for e in inputs):
            return
        frame.active += 1
        if any(frame.settled[e] for e in inputs):
            frame.state[target] = "ready"
            self.ready.append((frame, target))
        else:
            self.skip(frame, target, self.skip_reason(frame, inputs))

    def skip_reason(self, frame: Frame, inputs: list[tuple[str, str, str]]) -> str:
        reasons = []
        for source, port, _ in inputs:
            went = frame.ports.get(source)
            if source == TRIGGER or went is None:
                continue
            if went == "skipped":
                reasons.append(f"'{source}' was skipped")
            else:
                reasons.append(f"'{source}' went '{went}', not '{port}'")
        return "path not taken: " + ("; ".join(dict.fromkeys(reasons)) or "no input ran")

    def leave(self, frame: Frame, step_id: str, port: str) -> None:
        frame.ports[step_id] = port
        for edge in self.outgoing[step_id]:
            if edge[1] == "body" and self.steps[step_id]["kind"] == "logic.foreach":
                continue  # a loop's body edges belong to its items' frames
            self.settle(frame, edge, edge[1] == port)

    def done(self, frame: Frame) -> None:
        """One step of `frame` is settled: when it was the last, the frame is over."""
        frame.active -= 1
        if frame.active == 0 and frame.loop is not None:
            self.item_done(frame)

    # steps -----------------------------------------------------------------------------------
    def context(self, frame: Frame, step_id: str) -> dict[str, Any]:
        context = self.x.context(frame.visible(), step_id)
        if frame.loop is not None:
            context["item"], context["index"] = frame.item, frame.index
            context["run"] = {**context["run"], "item": frame.item, "index": frame.index}
        return context

    def new_row(self, frame: Frame, step_id: str, status: str = StepRun.Status.RUNNING):
        key = (frame.key, step_id)
        self.tries[key] = self.tries.get(key, 0) + 1
        step = self.steps[step_id]
        return StepRun(
            run=self.x.run,
            step_id=step_id,
            scope=frame.key,
            position=step["position"],
            kind=step["kind"],
            status=status,
            attempt=self.tries[key],
            started_at=timezone.now(),
        )

    def record(self, row: StepRun, durable: bool) -> None:
        """Save a finished row (inserting it unless it was saved when it started) and tell."""
        row.finished_at = row.finished_at or timezone.now()
        row.error = self.x.redact(row.error or "")[: logs.MAX_ERROR_CHARS]
        row.input, row.output = self.x.redact.value(row.input), self.x.redact.value(row.output)
        if row.pk is None:
            rows.insert(row)
        else:
            rows.update(row, FINISHED_FIELDS)
        event = logs.step_event(row)
        if durable and self.running > 0:
            self.x.events.flush(event)  # other steps still run: watchers see this one now
        else:
            self.x.events.add(event)  # leaves with what comes next, in a moment

    def skip(self, frame: Frame, step_id: str, reason: str) -> None:
        frame.state[step_id] = "done"
        frame.ports[step_id] = "skipped"
        if (frame.key, step_id) not in self.rows:
            row = self.new_row(frame, step_id, StepRun.Status.SKIPPED)
            row.error = reason
            self.record(row, durable=False)
        for edge in self.outgoing[step_id]:
            if edge[1] != "body":
                self.settle(frame, edge, False)
        self.done(frame)

    def launch(self, frame: Frame, step_id: str, inline: bool) -> None:
        step = self.steps[step_id]
        if frame.error or (frame.loop and frame.loop.error):
            frame.state[step_id] = "done"  # the frame failed: nothing more starts in it
            self.done(frame)
            return
        replay = self.rows.get((frame.key, step_id))
        if replay is not None and self.replay(frame, step_id, replay):
            return
        if self.watch_cancel and step["category"] != "logic" and self.cancelled():
            return
        frame.state[step_id] = "running"
        pin = self.pinned.get(step_id) if frame.loop is None else None
        if pin is not None:
            row = self.new_row(frame, step_id)
            self.x.log.write(step_id, "info", "pinned sample data used instead of running")
            outcome = StepOutcome("succeeded", pin["output"], input={"pinned": True})
            outcome.port = pin["port"]
            self.finish_step(frame, step_id, row, outcome)
            return
        kind = step["kind"]
        if kind == "logic.merge":
            inputs = [e[0] for e in self.incoming[step_id] if frame.settled.get(e)]
            visible = frame.visible()
            output = {s: visible.get(s) for s in inputs if s != TRIGGER}
            row = self.new_row(frame, step_id)
            self.finish_step(frame, step_id, row, StepOutcome("succeeded", output, input=inputs))
        elif kind == "logic.foreach":
            self.start_loop(frame, step_id)
        elif kind == "logic.wait":
            self.start_wait(frame, step_id)
        elif kind == "flow.call":
            row = self.new_row(frame, step_id)
            self.finish_step(
                frame, step_id, row, self.x.call_flow(step, self.context(frame, step_id))
            )
        else:
            self.start_step(frame, step_id, inline)

    def replay(self, frame: Frame, step_id: str, row: StepRun) -> bool:
        """Apply a step run of an earlier attempt; False when the step must run after all."""
        if row.status == StepRun.Status.WAITING:
            if row.resume_at and row.resume_at > timezone.now():
                frame.state[step_id] = "parked"
                self.parked.append(row.resume_at)
                return True
            row.status, row.port = StepRun.Status.SUCCEEDED, OUT
            row.output = {"waited_until": row.resume_at.isoformat() if row.resume_at else None}
            self.record(row, durable=False)
        if row.status == StepRun.Status.SKIPPED:
            self.skip(frame, step_id, row.error)
            return True
        frame.state[step_id] = "done"
        if row.port == ERROR_PORT or row.error:
            self.had_errors = True
        frame.outputs[step_id] = row.output
        self.note_output(frame, row.output)
        self.leave(frame, step_id, row.port or OUT)
        self.done(frame)
        return True

    def cancelled(self) -> bool:
        row = Run.objects.filter(pk=self.x.run.pk).values("status", "error").first()
        if row and row["status"] == Run.Status.CANCELLED:
            self.stop = (Run.Status.CANCELLED, row["error"])
            return True
        return False

    def start_step(self, frame: Frame, step_id: str, inline: bool, delay: float = 0.0) -> None:
        """Run a step here (`inline`) or on the pool, after `delay` seconds (a short retry
        backoff: slept in the step's own thread, so the steps running beside it go on)."""
        step = self.steps[step_id]
        row = self.new_row(frame, step_id)
        durable = step["category"] != "logic"
        if durable:
            rows.insert(row)
            self.x.events.flush(logs.step_event(row))
        context = self.context(frame, step_id)
        block = catalog.get_block(step["kind"])
        if inline and not (block and block.threaded):
            if delay:
                time.sleep(delay)
            self.finish_step(frame, step_id, row, self.execute(step, context, row))
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(
                max_workers=max(
                    settings.FLOWS_RUN_MAX_PARALLEL, settings.FLOWS_FOREACH_MAX_CONCURRENCY
                ),
                thread_name_prefix=f"run-{self.x.run.pk}",
            )
        self.running += 1
        self.pool.submit(self.in_thread, frame, step_id, row, step, context, delay)

    def in_thread(self, frame, step_id, row, step, context, delay: float = 0.0) -> None:
        try:
            if delay:
                time.sleep(delay)
            outcome = self.execute(step, context, row)
        except BaseException as exc:  # noqa: BLE001 - reported as the step's failure
            outcome = StepOutcome("failed", error=f"the engine failed: {type(exc).__name__}: {exc}")
        self.messages.put(("done", frame, step_id, row, outcome))

    def execute(self, step: dict[str, Any], context: dict[str, Any], row: StepRun) -> StepOutcome:
        usage = Usage()
        writer = self.x.log.for_step(step["id"])

        def log(level: str, message: str) -> None:
            self.on_coordinator(lambda: writer(level, message))

        callables = capability_callables(
            step,
            flow_id=self.x.run.flow_id,
            run_id=self.x.run.pk,
            connections=self.x.connections,
            log=log,
            usage=usage,
        )
        asked: list[float] = []  # waits services asked for (Retry-After), for the retry
        for name, call in list(callables.items()):
            capability = capability_registry.get(name)
            if capability is not None and capability.service is None:
                # Built-in capabilities (the key-value store) use the database.
                call = self.coordinated(call)
            callables[name] = noting_waits(call, asked)
        limit = (step.get("limits") or {}).get("timeout_s") or settings.FLOWS_BLOCK_TIMEOUT_S
        token = step_deadline.set(time.monotonic() + limit)
        try:
            outcome = run_step(step, context, callables, log, self.hooks(step, row))
        finally:
            step_deadline.reset(token)
        outcome.usage = usage.totals
        if outcome.status == "failed" and asked:
            outcome.retry_after = max(outcome.retry_after, asked[-1])
        return outcome

    def coordinated(self, call):
        return lambda payload: self.on_coordinator(lambda: call(payload))

    def hooks(self, step: dict[str, Any], row: StepRun) -> StepHooks:
        """A step's trace (sent live, and kept on its row as it grows) and its flow calls."""
        entries: list[dict[str, Any]] = []
        lock = threading.Lock()

        def trace(entry: dict[str, Any]) -> None:
            entry = self.x.redact.value(entry)
            with lock:
                entries.append(entry)
                kept = list(entries)
            self.x.events.flush(logs.trace_event(row, entry, len(kept)))

            def store() -> None:
                row.trace = kept
                if row.pk is not None:
                    StepRun.objects.filter(pk=row.pk).update(trace=kept)

            self.on_coordinator(store)

        def call_flow(config: dict[str, Any]) -> Any:
            outcome = self.on_coordinator(lambda: self.x.run_flow(step["id"], config))
            if outcome.status != "succeeded":
                raise CapabilityError(outcome.error or f"the called flow {outcome.status}")
            return outcome.output

        return StepHooks(trace=trace, call_flow=call_flow, database=self.on_coordinator)

    def finish_step(self, frame: Frame, step_id: str, row: StepRun, outcome: StepOutcome) -> None:
        step = self.steps[step_id]
        durable = row.pk is not None
        row.input, row.output = outcome.input, outcome.output
        row.error = outcome.error
        row.duration_ms, row.fuel_used = outcome.duration_ms, outcome.fuel_used
        row.tokens = getattr(outcome, "usage", None) or {}
        if outcome.status == "failed":
            if self.retry(frame, step_id, row, outcome, durable):
                return
            row.status = StepRun.Status.FAILED
            error = self.x.redact(outcome.error)
            if any(e[1] == ERROR_PORT for e in self.outgoing[step_id]):
                self.had_errors = True
                row.port = ERROR_PORT
                row.output = {"error": error, "step": step_id, "retryable": outcome.retryable}
                self.record(row, durable)
                self.x.log.write(
                    step_id, "warning", f"failed; going on along its error path: {error}"
                )
                frame.state[step_id] = "done"
                frame.outputs[step_id] = row.output
                self.leave(frame, step_id, ERROR_PORT)
                self.done(frame)
                return
            self.record(row, durable)
            frame.state[step_id] = "done"
            frame.error = frame.error or f"step '{step_id}': {error}"
            self.done(frame)
            return
        row.status = StepRun.Status.SUCCEEDED
        row.port = outcome.port or OUT
        self.record(row, durable)
        frame.state[step_id] = "done"
        frame.outputs[step_id] = outcome.output
        self.note_output(frame, outcome.output)
        if outcome.status == "skipped":
            if frame.loop is not None:
                # In a loop a filter ends its item only: the steps after it stay unsettled.
                self.x.log.write(
                    step_id, "info", f"item {frame.index} skipped: {outcome.skip_reason}"
                )
                self.done(frame)
                return
            self.output = outcome.output
            self.x.log.write(step_id, "info", f"run skipped: {outcome.skip_reason}")
            self.stop = (Run.Status.SKIPPED, f"step '{step_id}': {outcome.skip_reason}")
            self.done(frame)
            return
        if step["kind"] == "http.respond":
            self.x.respond(outcome.output)
        self.leave(frame, step_id, row.port)
        self.done(frame)

    def note_output(self, frame: Frame, output: Any) -> None:
        if frame.loop is None:
            self.output = output
        frame.last = output

    def retry(self, frame, step_id, row, outcome: StepOutcome, durable: bool) -> bool:
        """A retryable failure with attempts left: record it, then run the step again at once,
        after a short sleep, or (for a long backoff) with the run parked until then."""
        policy = self.steps[step_id].get("retry") or {"max_attempts": 1, "backoff_s": 0}
        tries = self.tries.get((frame.key, step_id), 1)
        if not outcome.retryable or tries >= policy["max_attempts"]:
            return False
        delay = min(policy["backoff_s"] * 2 ** (tries - 1), settings.FLOWS_STEP_RETRY_BACKOFF_MAX_S)
        if outcome.retry_after:
            delay = max(delay, min(outcome.retry_after, settings.FLOWS_RETRY_AFTER_MAX_S))
        row.status = StepRun.Status.FAILED
        self.record(row, durable)
        error = self.x.redact(outcome.error)
        if delay >= settings.FLOWS_PARK_MIN_S:
            resume_at = timezone.now() + timedelta(seconds=delay)
            self.x.log.write(
                step_id,
                "warning",
                f"attempt {tries} failed ({error}); retrying at {resume_at:%H:%M:%S} UTC "
                f"(in {delay:g} s): the run waits without holding a worker",
            )
            frame.state[step_id] = "parked"
            self.parked.append(resume_at)
            return True
        self.x.log.write(
            step_id, "warning", f"attempt {tries} failed ({error}); retrying in {delay:g} s"
        )
        self.start_step(frame, step_id, inline=self.running == 0, delay=delay)
        return True

    # waits -----------------------------------------------------------------------------------
    def start_wait(self, frame: Frame, step_id: str) -> None:
        step = self.steps[step_id]
        row = self.new_row(frame, step_id)
        try:
            resume_at = wait_until(step, render_config(step, self.context(frame, step_id)))
        except (templating.TemplateError, ValueError) as exc:
            self.finish_step(frame, step_id, row, StepOutcome("failed", error=str(exc)))
            return
        now = timezone.now()
        if resume_at <= now + timedelta(seconds=settings.FLOWS_PARK_MIN_S):
            pause = (resume_at - now).total_seconds()
            if pause > 0:
                time.sleep(pause)
            output = {"waited_until": resume_at.isoformat()}
            self.finish_step(frame, step_id, row, StepOutcome("succeeded", output))
            return
        row.status, row.resume_at = StepRun.Status.WAITING, resume_at
        row.input = {"until": resume_at.isoformat()}
        row.save(force_insert=True)
        self.x.events.add(logs.step_event(row))
        self.x.log.write(step_id, "info", f"waiting until {resume_at:%Y-%m-%d %H:%M:%S} UTC")
        frame.state[step_id] = "parked"
        self.parked.append(resume_at)

    # loops -----------------------------------------------------------------------------------
    def start_loop(self, frame: Frame, step_id: str) -> None:
        step = self.steps[step_id]
        row = self.new_row(frame, step_id)
        context = self.context(frame, step_id)
        try:
            config = render_config(step, context)
        except templating.TemplateError as exc:
            self.finish_step(frame, step_id, row, StepOutcome("failed", error=str(exc)))
            return
        items = config["items"]
        try:
            wanted = int(config.get("concurrency") or 1)
        except (TypeError, ValueError):
            error = f"field 'concurrency' must give a whole number, not {config['concurrency']!r}"
            self.finish_step(frame, step_id, row, StepOutcome("failed", error=error))
            return
        if isinstance(items, dict):
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, list):
            error = f"field 'items' must give a list, not {type(items).__name__}"
            self.finish_step(frame, step_id, row, StepOutcome("failed", error=error))
            return
        cap = settings.FLOWS_FOREACH_MAX_ITEMS
        if len(items) > cap:
            error = f"the list has {len(items)} items; a loop takes at most {cap}"
            self.finish_step(frame, step_id, row, StepOutcome("failed", error=error))
            return
        concurrency = max(1, min(wanted, settings.FLOWS_FOREACH_MAX_CONCURRENCY))
        row.input = {"items": len(items), "concurrency": concurrency}
        row.save(force_insert=True)
        self.x.events.flush(logs.step_event(row))
        loop = Loop(
            frame=frame,
            step=step_id,
            row=row,
            items=items,
            concurrency=concurrency,
            continue_on_error=bool(config.get("continue_on_error")),
            results=[None] * len(items),
        )
        if not items:
            self.end_loop(loop)
            return
        self.next_items(loop)

    def next_items(self, loop: Loop) -> None:
        while loop.active < loop.concurrency and loop.started < len(loop.items) and not loop.error:
            index = loop.started
            loop.started += 1
            loop.active += 1
            prefix = f"{loop.frame.key}/" if loop.frame.key else ""
            item = Frame(
                key=f"{prefix}{loop.step}[{index}]",
                parent=loop.frame,
                loop=loop,
                index=index,
                item=loop.items[index],
            )
            item.active += 1  # held until its entry edges are settled
            self.enter(item, loop.step, "body")
            self.done(item)

    def item_done(self, item: Frame) -> None:
        loop = item.loop
        loop.active -= 1
        if item.error:
            loop.failures += 1
            if loop.continue_on_error:
                loop.results[item.index] = {"error": item.error, "index": item.index}
            else:
                loop.error = loop.error or f"item {item.index}: {item.error}"
        else:
            loop.results[item.index] = item.last
        self.next_items(loop)
        if loop.active == 0 and (loop.error or loop.started == len(loop.items)):
            self.end_loop(loop)

    def end_loop(self, loop: Loop) -> None:
        if loop.error:
            outcome = StepOutcome("failed", error=loop.error)
        else:
            outcome = StepOutcome("succeeded", loop.results)
            if loop.failures:
                self.had_errors = True
                # On its row too, so a run resumed later still ends "succeeded with errors".
                outcome.error = (
                    f"{loop.failures} of {len(loop.items)} items failed; the loop went on"
                )
                self.x.log.write(loop.step, "warning", outcome.error)
        outcome.input = loop.row.input
        started = loop.row.started_at
        outcome.duration_ms = (timezone.now() - started).total_seconds() * 1000
        self.finish_step(loop.frame, loop.step, loop.row, outcome)


def noting_waits(call, asked: list[float]):
    """A capability that notes how long its service asked to wait when it refuses."""

    def noted(payload: Any) -> Any:
        try:
            return call(payload)
        except CapabilityError as exc:
            if exc.retry_after:
                asked.append(exc.retry_after)
            raise

    return noted


def wait_until(step: dict[str, Any], config: dict[str, Any]) -> datetime:
    """When a `logic.wait` step is over, from its rendered fields; ValueError with a clear
    message otherwise."""
    now = timezone.now()
    if step["config"].get("until"):
        raw = config.get("until")
        when = parse_datetime(str(raw).strip()) if raw else None
        if when is None:
            raise ValueError(f"field 'until': {raw!r} is not an ISO 8601 time")
        if timezone.is_naive(when):
            when = timezone.make_aware(when, timezone.utc)
    else:
        raw = config.get("seconds")
        try:
            seconds = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"field 'seconds': {raw!r} is not a number") from None
        if seconds < 0:
            raise ValueError("field 'seconds' must not be negative")
        when = now + timedelta(seconds=seconds)
    longest = now + timedelta(seconds=settings.FLOWS_WAIT_MAX_S)
    if when > longest:
        raise ValueError(f"a run may wait at most {settings.FLOWS_WAIT_MAX_S} s")
    return when
