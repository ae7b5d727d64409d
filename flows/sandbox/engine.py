"""One wasmtime Engine per process, created lazily (so after any fork), and its epoch ticker.

Stores are per step; the Engine, the linkers and compiled code are shared by all the threads of
the process. Native code is cached on disk, keyed by the wasmtime version and the engine settings,
and only ever deserialized when it is a file this platform wrote and its digest still matches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from functools import cache
from importlib.metadata import version
from pathlib import Path

from wasmtime import Config, Engine, Store

from .limits import Limits

# Settings that must match between the engine that compiles and the one that deserializes.
ENGINE_SETTINGS = {"consume_fuel": True, "epoch_interruption": True}
# The wall-clock limit is counted in epochs of this length.
EPOCH_TICK_S = 0.01
# Table elements live in host memory, outside the memory limit; the Python runner needs ~10,000.
TABLE_ELEMENTS = 100_000


@cache
def wasmtime_version() -> str:
    return version("wasmtime")


@cache
def engine_fingerprint() -> str:
    """Names native code that an engine of this process can load."""
    identity = {
        "wasmtime": wasmtime_version(),
        "settings": ENGINE_SETTINGS,
        "machine": platform.machine(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def new_engine(*, parallel_compilation: bool = False) -> Engine:
    """An engine with our settings. Workers compile serially: a forked child must never reuse a
    compilation thread pool its parent started (it can hang)."""
    config = Config()
    config.consume_fuel = ENGINE_SETTINGS["consume_fuel"]
    config.epoch_interruption = ENGINE_SETTINGS["epoch_interruption"]
    config.parallel_compilation = parallel_compilation
    return Engine(config)


def deadline_ticks(timeout_s: float) -> int:
    # One more tick: the first one may come right after the deadline is set.
    return math.ceil(timeout_s / EPOCH_TICK_S) + 1


class EpochTicker:
    """Advances the engine's epoch while steps run, and sleeps while none does."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.active = 0
        self.condition = threading.Condition()
        self.thread: threading.Thread | None = None
        # The clock time the current ticking period began at, and the epochs added since.
        self.started: float | None = None
        self.ticks = 0

    def lag(self) -> int:
        """Ticks the epoch is behind the clock: a deadline set now must add them, or a ticker
        held up by a busy machine would catch up at once and end the step early."""
        started = self.started
        if started is None:
            return 0
        return max(0, int((time.monotonic() - started) / EPOCH_TICK_S) - self.ticks)

    def __enter__(self) -> EpochTicker:
        with self.condition:
            self.active += 1
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name="flowbuilder-epoch-ticker", daemon=True
                )
                self.thread.start()
            self.condition.notify()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self.condition:
            self.active -= 1

    def run(self) -> None:
        while True:
            with self.condition:
                while self.active == 0:
                    self.condition.wait()
            self.ticks = 0
            self.started = time.monotonic()
            while self.active:
                time.sleep(EPOCH_TICK_S)
                # Catch up when this thread was held up, so epochs keep pace with the clock.
                due = int((time.monotonic() - self.started) / EPOCH_TICK_S)
                while self.ticks < due:
                    self.engine.increment_epoch()
                    self.ticks += 1
            self.started = None


class Runtime:
    """The sandbox state of one process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.engine = new_engine()
        self.ticker = EpochTicker(self.engine)
        # Guards the lazily loaded runner, linkers and module cache.
        self.lock = threading.Lock()
        self.cache: dict[str, object] = {}

    def new_store(self, limits: Limits) -> Store:
        store = Store(self.engine)
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(deadline_ticks(limits.timeout_s) + self.ticker.lag())
        store.set_limits(memory_size=limits.memory_bytes, table_elements=TABLE_ELEMENTS)
        return store


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, created on first use and again in a forked child."""
    global _runtime
    current = _runtime
    if current is None or current.pid != os.getpid():
        with _lock:
            if _runtime is None or _runtime.pid != os.getpid():
                _runtime = Runtime()
            current = _runtime
    return current


def _after_fork_in_child() -> None:
    # A lock held by another thread of the parent at fork time would never be released here.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
