"""Webhook bodies the database cannot store, and owners over their quotas: a 400 or 429 JSON
answer, and no run stored."""

import pytest

from flows.models import Run

from .test_webhooks import post

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"name": "a\\u0000b"}', "NUL character"),
        ('{"name": "\\ud800"}', "lone surrogate"),
        ('{"name": ' + "7" * 5000 + "}", "too many digits"),
        ('{"\\u0000": "key"}', "NUL character"),
    ],
)
def test_json_that_cannot_be_stored_gets_a_400_and_stores_nothing(client, make_flow, body, reason):
    flow = make_flow()
    response = post(client, flow, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert reason in response.json()["error"]
    assert not Run.objects.exists()


def test_form_fields_with_a_nul_get_a_400(client, make_flow):
    flow = make_flow()
    response = post(client, flow, "name=a%00b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "NUL character" in response.json()["error"]
    assert not Run.objects.exists()


def test_an_owner_over_runs_per_minute_gets_a_429_and_nothing_is_stored(
    client, make_flow, settings
):
    settings.FLOWS_OWNER_RUNS_PER_MINUTE = 2
    flow = make_flow()
    other = make_flow(slug="other")
    assert [post(client, f, {"name": "A"}).status_code for f in (flow, other)] == [202, 202]
    response = post(client, flow, {"name": "A"})
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "limit is 2 a minute" in response.json()["error"]
    assert Run.objects.count() == 2


def test_an_owner_at_the_concurrent_runs_limit_gets_a_429_until_runs_finish(
    client, make_flow, settings
):
    settings.FLOWS_OWNER_CONCURRENT_RUNS = 1
    flow = make_flow()
    stuck = Run.objects.create(flow=flow, trigger="webhook", status=Run.Status.RUNNING)
    response = post(client, flow, {"name": "A"})
    assert response.status_code == 429
    assert "1 queued or running" in response.json()["error"]
    stuck.status = Run.Status.SUCCEEDED
    stuck.save()
    assert post(client, flow, {"name": "A"}).status_code == 202


def test_a_repeated_delivery_over_quota_still_gets_its_first_run(client, make_flow, settings):
    settings.FLOWS_OWNER_RUNS_PER_MINUTE = 1
    flow = make_flow()
    first = post(client, flow, {"name": "A"}, **{"X-Delivery-Id": "d-1"})
    again = post(client, flow, {"name": "A"}, **{"X-Delivery-Id": "d-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["duplicate"] is True
