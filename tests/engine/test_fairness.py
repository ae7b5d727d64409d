"""Fairness between owners: one owner's runs cannot take every worker while other owners' runs
wait, and an owner alone may use them all."""

from __future__ import annotations

from flows.engine import start_run
from flows.engine.executor import claim, execute_run
from flows.models import Run

EVENT = {"body": {"name": "Ada"}}


def test_an_owner_at_their_share_waits_while_another_owners_run_waits(
    make_flow, other_user, settings
):
    settings.FLOWS_EXECUTOR = "embedded"  # only queues: the test plays the workers
    settings.FLOWS_OWNER_MAX_RUNNING = 1
    busy = make_flow(max_concurrency=10)
    also_busy = make_flow(slug="also-busy")  # the same owner's other flow
    theirs = make_flow(owner=other_user, slug="theirs")

    first, _ = start_run(busy, trigger="webhook", event=EVENT)
    assert claim(first.pk, "a")[1] == "claimed"
    alone, _ = start_run(busy, trigger="webhook", event=EVENT)
    assert claim(alone.pk, "b")[1] == "claimed"  # nobody else waits: the owner may go on

    other, _ = start_run(theirs, trigger="webhook", event=EVENT)
    held, _ = start_run(also_busy, trigger="webhook", event=EVENT)
    assert claim(held.pk, "c")[1] == "waiting"  # at their share while another owner waits
    assert claim(other.pk, "d")[1] == "claimed"

    # When one of the owner's runs ends, their waiting run goes on.
    settings.FLOWS_EXECUTOR = "inline"
    execute_run(first.pk, "a", manage_connections=False)
    execute_run(alone.pk, "b", manage_connections=False)
    held.refresh_from_db()
    assert held.status == Run.Status.SUCCEEDED
    assert held.output == {"text": "Hello, Ada!"}
