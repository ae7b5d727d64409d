"""The embedded mode's executor and scheduler: threads inside the one server process.

Used when REDIS_URL is unset (`make run`). Runs execute in a ThreadPoolExecutor started on the
first dispatch; in a server process (daphne, uvicorn, runserver) a scheduler thread also fires
due schedules, sweeps runs whose process died and prunes old runs.

The same threads serve the distributed mode's "here" backend: a run whose caller waits for its
answer in this server (`?wait=`, a flow that answers with `http.respond`) is executed by the
server itself while fewer than FLOWS_SERVER_RUNS such runs are executing, and queued for the
workers when that many are. It saves the queue's hops (server, Redis, the worker's main
process, a pool process, and the answer back through Redis): about 15 % of such a run's CPU and
1.5 ms of its answer (bench/peers.py). If the server dies mid-run, the run's worker id names the
dead process: the workers' sweep (`flows.tasks`) queues it again, as for a worker that died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

from flows.engine import answers, queue
from flows.engine.executor import execute_run, recover_local_runs, sweep_stale_runs
from flows.engine.retention import prune_runs
from flows.engine.schedule import Scheduler

logger = logging.getLogger(__name__)

SERVER_PROGRAMS = {"daphne", "uvicorn", "gunicorn", "hypercorn"}
SWEEP_EVERY_S = 60
PRUNE_EVERY_S = 3600

_lock = threading.Lock()
_state: dict = {"executor": None, "pid": None, "scheduler": None}


def _execute(run_id: int, token: str) -> None:
    try:
        execute_run(run_id, token)
    except Exception:  # the pool thread must survive for the next run
        logger.exception("embedded executor: run %s failed", run_id)


def _executor() -> ThreadPoolExecutor:
    if _state["executor"] is not None and _state["pid"] == os.getpid():
        return _state["executor"]
    with _lock:
        if _state["executor"] is None or _state["pid"] != os.getpid():
            _state["executor"] = ThreadPoolExecutor(
                max_workers=max(settings.FLOWS_EMBEDDED_WORKERS, settings.FLOWS_SERVER_RUNS),
                thread_name_prefix="flows-run",
            )
            _state["pid"] = os.getpid()
    return _state["executor"]


def submit(run_id: int, token: str, delay: float = 0.0) -> None:
    """Execute the run on the pool, at once or after `delay` seconds (a parked run's timer; the
    scheduler's sweep starts it if this process stops before then)."""
    if delay > 0:
        timer = threading.Timer(delay, submit, (run_id, token))
        timer.daemon = True
        timer.start()
        return
    _executor().submit(_execute, run_id, token)


queue.register("embedded", lambda run_id, token, _limit, delay: submit(run_id, token, delay))


def submit_here(run_id: int, token: str, time_limit_s: int | None, delay: float) -> None:
    """The "here" backend (see above): execute the run in this process if a slot is free, else
    hand it to the queue."""
    if not answers.take_here(run_id, settings.FLOWS_SERVER_RUNS):
        queue.backend("celery")(run_id, token, time_limit_s, delay)
        return
    try:
        _executor().submit(_execute_here, run_id, token)
    except BaseException:
        answers.forget_here(run_id)
        raise


def _execute_here(run_id: int, token: str) -> None:
    try:
        _execute(run_id, token)
    finally:
        answers.forget_here(run_id)


queue.register("here", submit_here)


def is_server_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves requests (and so should run the embedded scheduler)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program == "__main__.py":  # python -m uvicorn ...
        program = os.path.basename(os.path.dirname(argv[0]))
    if program in SERVER_PROGRAMS:
        return True
    if program == "manage.py" and len(argv) > 1 and argv[1] == "runserver":
        # With the autoreloader only the child (RUN_MAIN) serves.
        return os.environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


def _scheduler_loop() -> None:
    tick = settings.FLOWS_SCHEDULER_TICK_S
    time.sleep(tick)
    try:
        recover_local_runs()
    except Exception:
        logger.exception("embedded scheduler: recovering runs failed")
    scheduler = Scheduler()
    last_sweep = last_prune = time.monotonic()
    while True:
        try:
            scheduler.tick()
            if time.monotonic() - last_sweep >= SWEEP_EVERY_S:
                last_sweep = time.monotonic()
                sweep_stale_runs()
            if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                last_prune = time.monotonic()
                prune_runs()
        except Exception:  # a bad tick must not stop the schedules
            logger.exception("embedded scheduler tick failed")
        finally:
            close_old_connections()
        time.sleep(tick)


def start_scheduler() -> bool:
    """Start the scheduler thread once per process; False when it already runs."""
    with _lock:
        if _state["scheduler"] == os.getpid():
            return False
        _state["scheduler"] = os.getpid()
    threading.Thread(target=_scheduler_loop, name="flows-scheduler", daemon=True).start()
    return True


def maybe_warm_up() -> None:
    """Called at app start: a server process gets ready before it serves (and, when it executes
    runs itself, loads the Python step runner), so that its first answer is as quick as the
    next."""
    if not is_server_process():
        return
    from flows.engine.warm import warm_up

    mode = queue.executor_mode()
    runs = mode == "embedded" or (mode == "celery" and settings.FLOWS_SERVER_RUNS > 0)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        warm_up(serves=True, runs=runs)
        return
    # `uvicorn --workers N` loads the app inside each process's event loop, where the database
    # may not be used: warm up in a thread, before the loop serves anything.
    thread = threading.Thread(target=warm_up, kwargs={"serves": True, "runs": runs})
    thread.start()
    thread.join()


def maybe_start_scheduler() -> None:
    """Called at app start: embedded mode, in a server process, unless turned off."""
    choice = settings.FLOWS_SCHEDULER
    if choice == "off" or settings.FLOWS_DISTRIBUTED and choice != "on":
        return
    if choice == "on" or is_server_process():
        start_scheduler()
