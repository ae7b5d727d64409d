"""List pages run a fixed number of queries, however many rows they show."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from flows.compiler import deploy
from flows.models import Flow, Run
from integrations.models import Connection

from .conftest import greeter_document


def add_rows(alice, greeter, numbers: range) -> None:
    """Per number: a deployed flow with a run, a connection, and a version and run of greeter."""
    for n in numbers:
        flow = Flow.objects.create(
            owner=alice, name=f"Flow {n}", slug=f"flow-{n}", document=greeter_document()
        )
        Run.objects.create(
            flow=flow, version=deploy(flow, alice), trigger="manual", status="succeeded"
        )
        github = Connection(owner=alice, service="github", name=f"GitHub {n}")
        github.set_secrets({"token": f"ghp_token{n:04d}"})
        github.save()
        greeter.document["description"] = f"Version {n}"
        greeter.save()
        Run.objects.create(
            flow=greeter, version=deploy(greeter, alice), trigger="manual", status="failed"
        )


def query_counts(client, urls: list[str]) -> dict[str, int]:
    counts = {}
    for url in urls:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        counts[url] = len(captured)
    return counts


def test_list_pages_do_not_query_per_row(alice_client, alice, greeter):
    urls = [
        "/dashboard/",
        "/runs/",
        "/connections/",
        f"/flows/{greeter.pk}/",
        f"/flows/{greeter.pk}/runs/",
        f"/flows/{greeter.pk}/versions/",
    ]
    add_rows(alice, greeter, range(1))
    few = query_counts(alice_client, urls)
    add_rows(alice, greeter, range(1, 5))
    assert query_counts(alice_client, urls) == few
