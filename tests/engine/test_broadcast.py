"""Run events in distributed mode are published to Redis by the thread that makes them."""

import logging

from channels_redis.pubsub import RedisPubSubChannelLayer
from django.test import override_settings

from flows.engine import broadcast
from tests.engine.live import free_port


def test_an_unreachable_redis_loses_the_event_not_the_run(caplog):
    # Nothing listens on this port: the publish fails at once and is logged, never raised, so
    # the step that logged goes on (a client reads missed lines from the database).
    url = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(REDIS_URL=url):
        publisher = broadcast.RedisPublisher(RedisPubSubChannelLayer(hosts=[url]))
    with caplog.at_level(logging.ERROR, logger="flows.engine.broadcast"):
        publisher.publish(("run-1", "flow-1"), {"type": broadcast.MESSAGE_TYPE, "events": []})
    assert "could not send a run event to run-1, flow-1" in caplog.text


def test_a_step_status_line_keeps_its_markup():
    from flows.engine.logs import step_status_html

    html = step_status_html(
        {
            "run": 1,
            "step": "fetch",
            "kind": "http.request",
            "status": "failed",
            "attempt": 2,
            "duration_ms": 12.5,
            "error": "a <b>bad</b> answer",
        }
    )
    assert '<span class="step-attempt">attempt 2</span>' in html
    assert '<span class="step-duration">12.5 ms</span>' in html
    assert '<span class="step-error">a &lt;b&gt;bad&lt;/b&gt; answer</span>' in html
