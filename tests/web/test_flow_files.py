"""Flows as files from the pages: export a flow's document (the CLI's format, no secrets), import
one by upload or paste (bad files refused in plain words, nothing half-created), duplicate."""

import io
import json
import re

from django.core.management import call_command
from playwright.sync_api import Page, expect

from flows.document import export_document, unseal
from flows.models import Flow
from integrations.models import Connection

from .conftest import PASSWORD, greeter_document, screenshot

SECRET = "s3cret-value-never-exported"


def secret_greeter(owner) -> Flow:
    """The greeter with a secret setting filled in and a Slack connection bound."""
    connection = Connection.objects.create(owner=owner, service="slack", name="Team Slack")
    document = greeter_document()
    document["settings"] = {
        "api_token": {"value": SECRET, "secret": True, "description": "A token."},
        "greeting": {"value": "Hello", "description": "The first word."},
    }
    document["connections"] = {"slack": {"service": "slack", "connection": connection.pk}}
    return Flow.objects.create(owner=owner, name="Greeter", slug="greeter", document=document)


def log_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your flows")).to_be_visible()


def test_export_is_the_cli_format_without_secrets(alice_client, alice):
    flow = secret_greeter(alice)
    response = alice_client.get(f"/flows/{flow.pk}/export/")
    assert response["Content-Disposition"] == 'attachment; filename="greeter.json"'
    out = io.StringIO()
    call_command("flows", "export", f"alice/{flow.slug}", stdout=out)
    assert response.content.decode() == out.getvalue()
    exported = json.loads(response.content)
    assert exported["schema"] == "flowbuilder/flow@2"
    assert SECRET not in response.content.decode()
    assert exported["connections"] == {"slack": {"service": "slack"}}


def test_nobody_else_can_export_or_duplicate_a_flow(client, alice, bob):
    flow = secret_greeter(alice)
    client.force_login(bob)
    assert client.get(f"/flows/{flow.pk}/export/").status_code == 404
    assert client.post(f"/flows/{flow.pk}/duplicate/").status_code == 404
    assert Flow.objects.count() == 1


def test_an_imported_flow_binds_the_owners_only_connection_of_each_service(alice_client, alice):
    flow = secret_greeter(alice)
    text = json.dumps(export_document(flow.document))
    response = alice_client.post("/flows/import/", {"text": text, "name": "Copy via paste"})
    new = Flow.objects.get(name="Copy via paste")
    assert response.status_code == 302
    assert (
        new.document["connections"]["slack"]["connection"]
        == flow.document["connections"]["slack"]["connection"]
    )
    assert new.status == Flow.Status.DRAFT


def test_a_file_too_big_or_not_text_is_refused_and_nothing_is_created(alice_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = SimpleUploadedFile("big.json", b" " * 1_100_000 + b"{}")
    body = alice_client.post("/flows/import/", {"file": big}).content.decode()
    assert "The file is larger than the limit of 1,048,576 bytes." in body
    binary = SimpleUploadedFile("flow.json", b"\xff\xfe\x00garbage")
    body = alice_client.post("/flows/import/", {"file": binary}).content.decode()
    assert "“flow.json” is not" in body
    assert Flow.objects.count() == 0


def test_flows_as_files_journey(page: Page, alice):
    flow = secret_greeter(alice)
    log_in(page, "alice")

    # Export from the flow page: a download of the same document, without the secret.
    page.get_by_role("link", name="Greeter", exact=True).click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export").click()
    download = download_info.value
    assert download.suggested_filename == "greeter.json"
    path = download.path()
    text = open(path, encoding="utf-8").read()
    assert json.loads(text) == export_document(flow.document)
    assert SECRET not in text

    # Import it back by uploading the file, under a new name.
    page.get_by_role("link", name="Flows", exact=True).click()
    page.get_by_role("link", name="Import a flow file").click()
    expect(page.get_by_role("heading", name="Import a flow")).to_be_visible()
    page.get_by_label("Flow file (.json)").set_input_files(path)
    page.get_by_label("Name of the new flow").fill("Greeter from a file")
    page.get_by_role("button", name="Import as a new draft").click()
    expect(page.get_by_text("Imported “Greeter from a file” as a draft.")).to_be_visible()
    expect(page.get_by_role("heading", name="Greeter from a file")).to_be_visible()
    imported = Flow.objects.get(name="Greeter from a file")
    assert imported.document["steps"] == flow.document["steps"]
    assert imported.document["settings"]["api_token"]["value"] == ""

    # Pasted text that is not JSON, then JSON that is not a flow: explained, nothing created.
    count = Flow.objects.count()
    page.goto("/flows/import/")
    page.get_by_label("Or paste the JSON").fill('{"schema": "flowbuilder/flow@2", "steps": [}')
    page.get_by_role("button", name="Import as a new draft").click()
    expect(page.get_by_role("alert")).to_contain_text(
        re.compile(r"The pasted text is not valid JSON: .* at line 1, column \d+\.")
    )
    expect(page.get_by_role("alert")).to_contain_text("Nothing was created.")
    page.get_by_label("Or paste the JSON").fill(json.dumps({"schema": "flowbuilder/flow@2"}))
    page.get_by_role("button", name="Import as a new draft").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The pasted text is not a flow document this server reads:")
    expect(alert).to_contain_text('a trigger with a "kind" is required')
    screenshot(page, "flow-import-error")
    page.get_by_label("Or paste the JSON").fill("")
    page.get_by_role("button", name="Import as a new draft").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose a flow file or paste its JSON.")
    assert Flow.objects.count() == count

    # Pasting a valid document works too, keeping the name inside it.
    page.get_by_label("Or paste the JSON").fill(json.dumps(greeter_document("Pasted greeter")))
    page.get_by_role("button", name="Import as a new draft").click()
    expect(page.get_by_role("heading", name="Pasted greeter")).to_be_visible()

    # Duplicate: a new draft with the same document and a name of its own, twice.
    page.goto(f"/flows/{flow.pk}/")
    page.get_by_role("button", name="Duplicate").click()
    expect(page.get_by_text("Created “Greeter (copy)”, a draft copy of “Greeter”.")).to_be_visible()
    expect(page.get_by_role("heading", name="Greeter (copy)")).to_be_visible()
    page.goto(f"/flows/{flow.pk}/")
    page.get_by_role("link", name="Export").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Duplicate")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Greeter (copy 2)")).to_be_visible()
    copies = Flow.objects.filter(name__startswith="Greeter (copy").order_by("pk")
    assert [c.slug for c in copies] == ["greeter-copy", "greeter-copy-2"]
    assert copies[0].document["steps"] == flow.document["steps"]
    # The copy keeps the secret setting, stored encrypted like the original's.
    copied = copies[0].document["settings"]["api_token"]
    assert copied["value"] == "" and unseal(copied["sealed"]) == SECRET
    assert copies[0].status == Flow.Status.DRAFT
