"""What one run may store: log lines per step and per run, key-value entries per value and per
owner; expired entries are pruned."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from flows.engine import start_run
from flows.engine.retention import prune_runs
from flows.models import KVEntry, LogLine, Run

from .conftest import document

CHATTY = """
def main(event, ctx):
    for i in range(event["lines"]):
        ctx.log("line " + str(i))
    return {"done": True}
"""


def chatty_flow(make_flow, **more):
    steps = [
        {"id": "talk", "kind": "code.python", "config": {"source": CHATTY}},
        {"id": "again", "kind": "code.python", "config": {"source": CHATTY}},
    ]
    return make_flow(document(steps=steps, edges=[], **more))


def test_a_step_that_logs_too_much_keeps_its_first_lines_and_says_the_rest_were_dropped(
    make_flow, settings
):
    settings.FLOWS_STEP_LOG_LINES_MAX = 5
    run, _ = start_run(chatty_flow(make_flow), trigger="manual", event={"lines": 50})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    talk = list(LogLine.objects.filter(run=run, step_id="talk").values_list("message", flat=True))
    assert talk == [
        "line 0",
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "further log lines of this step are dropped: it wrote 5",
    ]
    assert LogLine.objects.filter(run=run, step_id="again").count() == 6  # a step of its own


def test_a_run_stops_storing_log_lines_at_its_limit(make_flow, settings):
    settings.FLOWS_RUN_LOG_LINES_MAX = 8
    run, _ = start_run(chatty_flow(make_flow), trigger="manual", event={"lines": 6})
    lines = list(LogLine.objects.filter(run=run).values_list("step_id", "message"))
    assert len(lines) == 9
    assert lines[-1] == ("again", "further log lines of this run are dropped: it wrote 8")


KV = """
def main(event, ctx):
    try:
        ctx.call("kv.set", {"key": event["key"], "value": "x" * event["size"]})
        return {"stored": True}
    except ctx.CapabilityError as exc:
        return {"stored": False, "why": str(exc)}
"""


def kv_flow(make_flow, **fields):
    step = {"id": "store", "kind": "code.python", "config": {"source": KV}, "grants": ["kv.set"]}
    return make_flow(document(steps=[step], edges=[]), **fields)


def test_a_value_over_the_entry_limit_is_refused_with_its_size(make_flow, settings):
    settings.FLOWS_KV_VALUE_MAX_BYTES = 1000
    run, _ = start_run(kv_flow(make_flow), trigger="manual", event={"key": "k", "size": 2000})
    run.refresh_from_db()
    assert run.output == {
        "stored": False,
        "why": "the value is 2,002 bytes as JSON; an entry may hold at most 1,000",
    }
    assert not KVEntry.objects.exists()


def test_an_owners_values_together_stay_under_their_quota(make_flow, settings, other_user):
    settings.FLOWS_KV_OWNER_MAX_BYTES = 5000
    first, second = kv_flow(make_flow), kv_flow(make_flow, slug="second")
    theirs = kv_flow(make_flow, owner=other_user, slug="theirs")
    for flow, key in ((first, "a"), (second, "b")):
        run, _ = start_run(flow, trigger="manual", event={"key": key, "size": 2000})
        assert Run.objects.get(pk=run.pk).output == {"stored": True}
    run, _ = start_run(first, trigger="manual", event={"key": "c", "size": 2000})
    why = Run.objects.get(pk=run.pk).output["why"]
    assert why.startswith("storing this value would make your flows' stored values 6,006 bytes")
    # Replacing an entry counts its new size only; another owner has a quota of their own.
    run, _ = start_run(first, trigger="manual", event={"key": "a", "size": 2500})
    assert Run.objects.get(pk=run.pk).output == {"stored": True}
    run, _ = start_run(theirs, trigger="manual", event={"key": "a", "size": 4000})
    assert Run.objects.get(pk=run.pk).output == {"stored": True}


def test_retention_deletes_expired_entries(make_flow):
    flow = kv_flow(make_flow)
    KVEntry.objects.create(flow=flow, key="old", value=1, expires_at=timezone.now())
    KVEntry.objects.create(
        flow=flow, key="new", value=2, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert prune_runs()["kv_expired"] == 1
    assert list(KVEntry.objects.values_list("key", flat=True)) == ["new"]
