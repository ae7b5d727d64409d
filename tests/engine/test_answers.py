"""Callers who wait for a run's answer: one hub per server process hands it over
(flows.engine.answers); the database is read only when a notice could not carry the answer."""

import asyncio
import time

import pytest
from django.conf import settings
from redis import Redis

from flows.engine import answers

from .conftest import document
from .test_webhooks import post

pytestmark = pytest.mark.django_db

BIG = """
def main(event, ctx):
    return {"text": "x" * 400000}
"""


def test_an_answer_too_large_for_a_notice_is_read_from_the_database(client, make_flow):
    flow = make_flow(
        document(
            steps=[{"id": "big", "kind": "code.python", "config": {"source": BIG}}],
            edges=[["trigger", "big"]],
        )
    )
    response = post(client, flow, {}, query="?wait=10")
    assert response.status_code == 200
    assert response.json()["output"] == {"text": "x" * 400000}


def test_a_run_that_ends_before_its_caller_waits_is_answered_at_once():
    async def scenario() -> tuple[object, float]:
        hub = answers.hub()
        await hub.ready()
        hub.deliver(41, {"run_id": 41, "status": "succeeded"})
        started = time.monotonic()
        answer = await hub.wait(41, 5)
        return answer, time.monotonic() - started

    answer, waited = asyncio.run(scenario())
    assert answer == {"run_id": 41, "status": "succeeded"}
    assert waited < 1  # kept, not found after the caller's five seconds


def test_a_caller_whose_run_never_ends_is_told_nothing_after_its_time():
    async def scenario() -> object:
        hub = answers.hub()
        await hub.ready()
        answer = await hub.wait(42, 0.05)
        return answer, hub.waiters

    answer, waiters = asyncio.run(scenario())
    assert answer is None
    assert waiters == {}  # nothing left behind for a caller that went away


@pytest.mark.skipif(not settings.REDIS_URL, reason="the answers channel exists in distributed mode")
def test_callers_check_the_database_when_the_subscription_was_lost_and_later_answers_arrive():
    redis = Redis.from_url(settings.REDIS_URL)

    def subscribers() -> int:
        return sum(n for _, n in redis.pubsub_numsub(answers.channel_name()))

    async def scenario() -> tuple[object, object]:
        hub = answers.hub()
        assert await hub.ready()
        waiting = asyncio.create_task(hub.wait(43, 10))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(redis.client_kill_filter, _type="pubsub")
        lost = await waiting  # a notice may have passed while it was gone: look in the database
        for _ in range(100):
            if hub.subscriptions == 2:
                break
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(subscribers) == 1
        waiting = asyncio.create_task(hub.wait(44, 10))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(
            redis.publish, answers.channel_name(), '{"run": 44, "answer": {"run_id": 44}}'
        )
        return lost, await waiting

    try:
        lost, later = asyncio.run(scenario())
    finally:
        redis.close()
    assert lost is answers.CHECK
    assert later == {"run_id": 44}
