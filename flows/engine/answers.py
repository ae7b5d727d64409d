"""Answers for webhook callers who wait (`?wait=N`, or a flow with an `http.respond` step).

A waiting caller must cost almost nothing, at a thousand at once: no subscription, no database
read and no thread of its own while it waits. So each server process keeps one `Hub`:

- The engine, wherever a run ends or a respond step sets its answer, sends one notice carrying
  the answer itself (`notify`). In distributed mode it is one PUBLISH on the deployment's answers
  channel, which every server process subscribes to once; in the embedded mode, and for a run
  the server executes itself (`take_here`), the hub lives in the same process and is handed
  the notice directly.
- A waiter is a future in a dict, keyed by run id. Notices that find no waiter are kept for a
  minute, for the caller whose run ended before it started to wait (the inline executor runs
  the whole flow before the view waits at all).
- A notice too large to publish carries no answer: its waiter reads the run from the database.
  So does a waiter whose hub lost its subscription (it reconnects, then tells every waiter to
  check), and a waiter that timed out, once, before answering "still running".
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time
from typing import Any

from django.conf import settings

from flows.engine import broadcast
from flows.models import Run

logger = logging.getLogger(__name__)

# Notices with an answer larger than this carry none: the waiter reads the database.
MAX_NOTICE_BYTES = 256 * 1024
# How long, and how many, notices that found no waiter are kept.
KEEP_S = 60.0
KEEP_MAX = 20_000
# A future resolved with this means "ask the database".
CHECK = object()


def answer_of(run: Run) -> dict[str, Any]:
    """What a waiting caller is told about a run, as the webhook view answers it."""
    return {
        "run_id": run.pk,
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "response": run.response,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def channel_name() -> str:
    return f"{settings.FLOWS_CHANNEL_PREFIX}__answers"


def _notice(run: Run) -> str:
    data = json.dumps({"run": run.pk, "answer": answer_of(run)}, default=str)
    if len(data) > MAX_NOTICE_BYTES:
        data = json.dumps({"run": run.pk, "answer": None})
    return data


# Runs this process executes for a caller who waits here: their notices stay in the process.
# How many there are is how many of the server's slots for such runs are taken.
_here: set[int] = set()
_here_lock = threading.Lock()


def take_here(run_id: int, slots: int) -> bool:
    """Count the run among those this process executes for a caller here, if fewer than
    `slots` are; False when they are full."""
    with _here_lock:
        if len(_here) >= slots:
            return False
        _here.add(run_id)
        return True


def forget_here(run_id: int) -> None:
    """The run is no longer executing here (it ended, or could not start)."""
    with _here_lock:
        _here.discard(run_id)


def notify(run: Run) -> None:
    """The run has an answer for its caller (it ended, or a respond step ran): tell the hubs."""
    if not settings.REDIS_URL or run.pk in _here:
        hub = _hub
        if hub is not None and not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.deliver, run.pk, answer_of(run))
            return
        if not settings.REDIS_URL:
            return
    try:
        broadcast.redis_client().publish(channel_name(), _notice(run))
    except Exception:  # the waiter finds the answer in the database when its time is up
        logger.exception("could not publish the answer of run %s", run.pk)


class Hub:
    """The waiters of one server process (one event loop)."""

    # Seconds between attempts to subscribe again, doubling up to the second figure.
    RECONNECT_S = (0.5, 10.0)

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.waiters: dict[int, list[asyncio.Future]] = {}
        self.kept: collections.OrderedDict[int, tuple[float, Any]] = collections.OrderedDict()
        self.subscribed = asyncio.Event()
        self.subscriptions = 0  # made so far: more than one means it was lost and made again
        self.task: asyncio.Task | None = None
        if settings.REDIS_URL:
            self.task = loop.create_task(self._listen())
        else:
            self.subscribed.set()

    def deliver(self, run_id: int, answer: Any) -> None:
        futures = self.waiters.pop(run_id, None)
        if not futures:
            self._keep(run_id, answer)
            return
        for future in futures:
            if not future.done():
                future.set_result(answer)

    def _keep(self, run_id: int, answer: Any) -> None:
        now = time.monotonic()
        self.kept[run_id] = (now, answer)
        self.kept.move_to_end(run_id)
        while self.kept:
            first, (at, _) = next(iter(self.kept.items()))
            if len(self.kept) <= KEEP_MAX and now - at <= KEEP_S:
                break
            del self.kept[first]

    def _check_all(self) -> None:
        """Notices may have been missed: every waiter asks the database once."""
        waiters, self.waiters = self.waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(CHECK)

    async def _listen(self) -> None:
        from redis.asyncio import Redis

        pause = self.RECONNECT_S[0]
        while True:
            client = Redis.from_url(settings.REDIS_URL)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel_name())
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":  # in effect from now on
                        if self.subscribed.is_set():
                            self._check_all()
                        self.subscriptions += 1
                        self.subscribed.set()
                        pause = self.RECONNECT_S[0]
                    elif message.get("type") == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("answers subscription lost (%s); reconnecting", exc)
                self._check_all()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.RECONNECT_S[1])
            finally:
                # Bounded: a loop that is closing must not wait on a connection being made.
                for closing in (pubsub.aclose, client.aclose):
                    try:
                        await asyncio.wait_for(closing(), 1)
                    except Exception:
                        logger.debug("closing the answers connection failed", exc_info=True)

    def _receive(self, data: bytes) -> None:
        try:
            notice = json.loads(data)
            self.deliver(int(notice["run"]), notice.get("answer") or CHECK)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed answer notice")

    async def ready(self, timeout_s: float = 1.0) -> bool:
        """Subscribed, so that no notice sent from now on is missed."""
        try:
            await asyncio.wait_for(self.subscribed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def wait(self, run_id: int, timeout_s: float) -> Any:
        """The run's answer (a dict), CHECK (ask the database), or None after `timeout_s`."""
        kept = self.kept.pop(run_id, None)
        if kept is not None:
            return kept[1]
        future = self.loop.create_future()
        self.waiters.setdefault(run_id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            futures = self.waiters.get(run_id)
            if futures and future in futures:
                futures.remove(future)
                if not futures:
                    del self.waiters[run_id]


_hub: Hub | None = None


def listening() -> bool:
    """This event loop's hub exists and is subscribed (without making one)."""
    hub = _hub
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return hub is not None and hub.loop is loop and hub.subscribed.is_set()


def hub() -> Hub:
    """This process's hub, on the running event loop (made on first use)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop or loop.is_closed():
        if _hub is not None and _hub.task is not None and not _hub.loop.is_closed():
            _hub.loop.call_soon_threadsafe(_hub.task.cancel)
        _hub = Hub(loop)
    return _hub
