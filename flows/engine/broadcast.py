"""Send run events to Channels groups from the threads and processes that execute runs.

Events of one run must arrive in the order they happened, and sending must not hold up the
step that logs for longer than its line's INSERT does.

- With the in-memory channel layer (embedded mode) the WebSocket consumers live on the ASGI
  server's event loop, and its queues may only be touched from that loop: the server registers
  its loop (`attach_loop`, called by consumers and async views) and the sender runs there.
  Without a registered loop no consumer exists in this process, so there is nobody to tell.
  Other threads hand their events to one sender per process: a queue drained by a single task.
- With the Redis pub/sub layer (distributed mode) there is no queue: the calling thread publishes
  the event to its groups' Redis channels at once, in one round trip (a pipeline of PUBLISH
  commands, the message serialized once). It is cheaper than a hand-off to another thread, and
  the step that logs already waits as long for its line's INSERT. Redis trouble loses the event,
  never the run: a client reads missed lines from the database.
- With the list-based Redis layer the same sender runs on a private event loop thread, which
  keeps one connection pool for the life of the process, instead of `async_to_sync` building a
  new event loop (and a new Redis connection) for every message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

# One message carries one or more events of a run, in order: {"type": ..., "events": [...]}.
MESSAGE_TYPE = "flows.events"


class _Sender:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue | None = None
        self.ready = threading.Event()
        # Events put by other threads wait here; one wake-up of the loop moves all of them.
        self.pending: collections.deque = collections.deque()
        self.wake_scheduled = False
        self.lock = threading.Lock()
        if _running_loop() is loop:
            self._start()
        else:
            loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self.queue = asyncio.Queue()
        self.loop.create_task(self._drain())
        self.ready.set()

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            groups, message = await self.queue.get()
            for group in groups:
                try:
                    await layer.group_send(group, message)
                except Exception:  # a lost event must not stop the ones after it
                    logger.exception("could not send a run event to %s", group)

    def _move_pending(self) -> None:
        with self.lock:
            self.wake_scheduled = False
            items = list(self.pending)
            self.pending.clear()
        for item in items:
            self.queue.put_nowait(item)

    def put(self, groups: tuple[str, ...], message: dict[str, Any]) -> None:
        if _running_loop() is self.loop:
            self.queue.put_nowait((groups, message))
            return
        self.ready.wait(5)
        with self.lock:
            self.pending.append((groups, message))
            if self.wake_scheduled:
                return
            self.wake_scheduled = True
        self.loop.call_soon_threadsafe(self._move_pending)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_lock = threading.Lock()
_server_loop: asyncio.AbstractEventLoop | None = None
_sender: _Sender | None = None
_sender_pid: int | None = None


def attach_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called from the ASGI server's event loop: in-memory layer events are delivered there."""
    global _server_loop
    if _server_loop is None or _server_loop.is_closed():
        _server_loop = loop


def _private_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="flows-broadcast", daemon=True).start()
    return loop


def _get_sender() -> _Sender | None:
    global _sender, _sender_pid
    pid = os.getpid()
    if _sender is not None and _sender_pid == pid and not _sender.loop.is_closed():
        return _sender
    with _lock:
        if _sender is not None and _sender_pid == pid and not _sender.loop.is_closed():
            return _sender
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            if _server_loop is None or _server_loop.is_closed():
                return None
            loop = _server_loop
        else:
            loop = _private_loop()
        _sender, _sender_pid = _Sender(loop), pid
        return _sender


# Seconds a PUBLISH may take before the event is given up (the run goes on).
PUBLISH_TIMEOUT_S = 2.0
_clients: dict[tuple[int, str], Any] = {}
_client_lock = threading.Lock()  # not _lock: that one is held while a publisher is made


def redis_client() -> Any:
    """This process's Redis client for publishing run events and answers (made again in a
    forked child, whose parent's connections it must not share)."""
    from django.conf import settings

    key = (os.getpid(), settings.REDIS_URL)
    client = _clients.get(key)
    if client is None:
        from redis import Redis

        with _client_lock:
            client = _clients.get(key)
            if client is None:
                client = Redis.from_url(
                    settings.REDIS_URL,
                    socket_timeout=PUBLISH_TIMEOUT_S,
                    socket_connect_timeout=PUBLISH_TIMEOUT_S,
                )
                _clients.clear()  # a forked child's copies of its parent's
                _clients[key] = client
    return client


class RedisPublisher:
    """Publishes straight to the Redis channels that the pub/sub layer subscribes groups to."""

    def __init__(self, layer: Any):
        from django.conf import settings

        self.layer = layer
        config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
        self.prefix = config.get("prefix", "asgi")
        self.client = redis_client()

    def channel(self, group: str) -> str:
        # The name channels_redis.pubsub gives a group's channel (RedisPubSubLoopLayer).
        return f"{self.prefix}__group__{group}"

    def publish(self, groups: tuple[str, ...], message: dict[str, Any]) -> None:
        data = self.layer.serialize(message)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.publish(self.channel(group), data)
                pipe.execute()
        except Exception:  # a lost event must not fail the run
            logger.exception("could not send a run event to %s", ", ".join(groups))


_publisher: RedisPublisher | None = None
_publisher_pid: int | None = None


def publisher() -> RedisPublisher | None:
    """This process's publisher straight to Redis, or None when the channel layer is not
    Redis pub/sub."""
    global _publisher, _publisher_pid
    pid = os.getpid()
    if _publisher_pid != pid:
        from channels_redis.pubsub import RedisPubSubChannelLayer

        with _lock:
            if _publisher_pid != pid:
                layer = get_channel_layer()
                _publisher = (
                    RedisPublisher(layer) if isinstance(layer, RedisPubSubChannelLayer) else None
                )
                _publisher_pid = pid
    return _publisher


def send(groups: tuple[str, ...], events: list[dict[str, Any]]) -> None:
    """Send `events` to the groups as one message, in the order of calls, without waiting for
    any consumer."""
    message = {"type": MESSAGE_TYPE, "events": events}
    publisher_ = publisher()
    if publisher_ is not None:
        publisher_.publish(groups, message)
        return
    sender = _get_sender()
    if sender is not None:
        sender.put(groups, message)
