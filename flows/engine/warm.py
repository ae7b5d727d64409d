"""Warm a process up before it takes work, so that its first run answers as quickly as the next:
the Python step runner (loaded and run once), the run-event publisher (with its imports) and, in
a server, the database connection, the URL table and the connection to the run queue. Without
it the first run after a start paid about 150 to 250 ms for these.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def _queue_connection() -> None:
    """A server's connection to the broker, with the run queue declared: the first run queued
    paid about 60 ms for them."""
    from flowbuilder.celery import app

    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
        producer.maybe_declare(app.amqp.queues[app.conf.task_default_queue])


def warm_up(serves: bool, runs: bool) -> None:
    """`serves`: the process answers requests; `runs`: it executes runs. A part that fails is
    logged and left to the first run."""
    if not settings.FLOWS_WARM_UP:
        return
    from django.db import close_old_connections, connection
    from django.urls import reverse

    from flows.engine import broadcast, queue
    from flows.sandbox.python import warm_up as warm_up_runner

    parts = [broadcast.publisher]
    if runs:
        parts.append(warm_up_runner)
    if serves and queue.executor_mode() == "celery":
        parts.append(_queue_connection)
    if serves:
        # Not in a Celery pool process: it was just forked, and Celery's own start-up closes
        # the database connections it inherited after this.
        parts += [
            connection.ensure_connection,
            lambda: reverse("flows:hook_run", args=["warm-up", 1]),
            close_old_connections,
        ]
    for part in parts:
        try:
            part()
        except Exception:
            logger.warning("warming up this process failed", exc_info=True)


async def warm_up_loop() -> None:
    """On a server's event loop as it starts (the ASGI lifespan, flowbuilder.asgi): run events
    are delivered to this loop, and in distributed mode its answers hub subscribes now rather
    than on the first caller who waits, which paid about 50 ms for it."""
    import asyncio

    from flows.engine import answers, broadcast

    broadcast.attach_loop(asyncio.get_running_loop())
    if settings.FLOWS_WARM_UP and settings.REDIS_URL:
        if not await answers.hub().ready(timeout_s=2.0):
            logger.warning("the answers hub did not subscribe at start; it goes on trying")
