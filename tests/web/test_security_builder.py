"""Hostile input to the builder: JSON nested too deep, drafts of a shape the pages cannot read,
malformed node-form requests and hostile uploads get a clear error and change nothing."""

import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from flows.models import Artifact, Run

from .conftest import greeter_document

DEEP = "[" * 100_000


def test_a_document_nested_too_deep_is_refused_and_nothing_is_saved(alice_client, greeter):
    response = alice_client.post(f"/flows/{greeter.pk}/builder/save/", {"document": DEEP})
    assert response.status_code == 400
    assert (
        "The flow could not be read: it is nested more than 100 levels deep."
        in response.content.decode()
    )
    greeter.refresh_from_db()
    assert greeter.document == greeter_document()


def test_an_event_nested_too_deep_starts_no_run(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/test/",
        {"document": json.dumps(greeter.document), "event": '{"a": ' + "[" * 150 + "]" * 150 + "}"},
    )
    assert response.status_code == 400
    assert (
        "The event cannot be used: it is nested more than 100 levels deep."
        in response.content.decode()
    )
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"trigger": "manual"}, '"trigger" must be an object'),
        ({"connections": {"llm": 5}}, 'connection "llm" must be an object with a "service" name'),
        ({"trigger": {"kind": 5}}, 'the trigger\'s "kind" must be a string'),
        (
            {"trigger": {"kind": "trigger.github", "config": {"events": 5}}},
            'the trigger\'s "events" must be a list',
        ),
        ({"steps": ["greet"]}, "step 1 must be an object"),
        (
            {"steps": [{"id": "a", "kind": "code.python", "grants": 7}]},
            'the "grants" of step 1 must be a list',
        ),
    ],
)
def test_a_draft_the_pages_could_not_read_is_refused(alice_client, greeter, change, problem):
    document = {**greeter_document(), **change}
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/save/", {"document": json.dumps(document)}
    )
    assert response.status_code == 400
    assert f"The flow could not be read: {problem}." in html.unescape(response.content.decode())
    greeter.refresh_from_db()
    assert greeter.document == greeter_document()
    for page in ("", "builder/", "setup/"):
        assert alice_client.get(f"/flows/{greeter.pk}/{page}").status_code == 200


def test_the_node_form_ignores_malformed_errors(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/node/",
        {"step": json.dumps({"id": "greet", "kind": "logic.template"}), "errors": "[1, {}]"},
    )
    assert response.status_code == 200


def test_a_schedule_flow_shows_its_schedule(alice_client, greeter):
    trigger = {"kind": "trigger.schedule", "config": {"cron": "*/5 * * * *", "timezone": "UTC"}}
    greeter.document = greeter_document(trigger=trigger)
    greeter.save()
    response = alice_client.get(f"/flows/{greeter.pk}/")
    assert response.status_code == 200
    assert "Runs on the schedule <code>*/5 * * * *</code>." in response.content.decode()


def test_an_upload_with_a_hostile_capability_section_is_refused(alice_client, greeter):
    name = b"flowbuilder.capabilities"
    body = bytes([len(name)]) + name + b"[" * 50_000
    size = len(body)
    # A minimal module: the header, then one custom section (its size in three LEB128 bytes).
    leb = bytes([(size & 0x7F) | 0x80, ((size >> 7) & 0x7F) | 0x80, size >> 14])
    data = b"\0asm\1\0\0\0" + b"\x00" + leb + body
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/upload/",
        {"module": SimpleUploadedFile("evil.wasm", data)},
    )
    assert response.status_code == 400
    assert "the flowbuilder.capabilities section must hold a JSON list" in (
        response.content.decode()
    )
    assert not Artifact.objects.exists()
