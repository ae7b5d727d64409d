"""The builder's server side of connections and drafts: aliases no step needs are dropped on save
whatever the browser sends, the node form offers the owner's connections of the node's service,
the new-connection dialog tests and saves a connection, and a save over a changed draft is
refused."""

import json

from django.utils.html import escape

from flows.models import Flow
from integrations.models import Connection

from .conftest import greeter_document


def llm_document(connections: dict, steps: list[dict]) -> dict:
    document = greeter_document("Chat")
    document["connections"] = connections
    document["steps"] = steps
    document["edges"] = [["trigger", "out", steps[0]["id"]]]
    return document


def chat(step_id: str, **extra) -> dict:
    return {"id": step_id, "kind": "llm.chat", "config": {"prompt": "hi"}, **extra}


def save(client, flow, document, **extra):
    return client.post(
        f"/flows/{flow.pk}/builder/save/", {"document": json.dumps(document), **extra}
    )


def test_a_save_drops_the_aliases_no_step_needs(alice_client, alice, greeter):
    mine = Connection.objects.create(owner=alice, service="llm", name="Mine")
    document = llm_document(
        {
            "llm": {"service": "llm", "connection": mine.pk},
            "llm_2": {"service": "llm", "connection": mine.pk},
            "github": {"service": "github", "connection": None},
        },
        [chat("chat", connection="llm_2")],
    )
    save(alice_client, greeter, document)
    greeter.refresh_from_db()
    assert greeter.document["connections"] == {"llm_2": {"service": "llm", "connection": mine.pk}}


def test_a_step_naming_no_alias_keeps_every_alias_of_its_service(alice_client, greeter):
    document = llm_document(
        {
            "llm": {"service": "llm", "connection": None},
            "slack": {"service": "slack", "connection": None},
        },
        [chat("chat"), {"id": "code", "kind": "code.python", "config": {}, "grants": ["llm.chat"]}],
    )
    save(alice_client, greeter, document)
    greeter.refresh_from_db()
    assert greeter.document["connections"] == {"llm": {"service": "llm", "connection": None}}


def test_the_node_form_offers_the_owners_connections_of_the_nodes_service(
    alice_client, alice, bob, greeter
):
    mine = Connection.objects.create(owner=alice, service="llm", name="Alice's model")
    Connection.objects.create(owner=alice, service="github", name="Alice's GitHub")
    Connection.objects.create(owner=bob, service="llm", name="Bob's model")
    aliases = {
        "llm": {"service": "llm", "connection": mine.pk},
        "llm_2": {"service": "llm", "connection": None},
    }
    body = alice_client.post(
        f"/flows/{greeter.pk}/builder/node/",
        {"step": json.dumps(chat("chat", connection="llm")), "connections": json.dumps(aliases)},
    ).content.decode()
    assert '<label for="connection-llm">LLM connection</label>' in body
    assert f'<option value="{mine.pk}" selected>Alice&#x27;s model</option>' in body
    assert "Bob&#x27;s model" not in body
    assert "Alice&#x27;s GitHub" not in body
    assert '<option value="new">Create a new one…</option>' in body
    assert "this node uses “llm”" in body


def test_the_connection_dialog_tests_what_was_typed_then_saves_it(
    alice_client, alice, greeter, llm_fake, settings
):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = True
    url = f"/flows/{greeter.pk}/builder/connections/llm/"
    assert 'name="base_url"' in alice_client.get(url).content.decode()
    typed = {"name": "Local", "base_url": llm_fake.base_url, "model": "reviewer-1"}
    tested = alice_client.post(url, {**typed, "action": "test"})
    assert "Works: Connected" in tested.content.decode()
    assert not Connection.objects.filter(owner=alice).exists()
    saved = alice_client.post(url, {**typed, "action": "save"})
    connection = Connection.objects.get(owner=alice, name="Local")
    assert json.loads(saved["HX-Trigger"])["connection-created"] == {
        "id": connection.pk,
        "name": "Local",
        "service": "llm",
    }
    assert alice_client.get(f"/flows/{greeter.pk}/builder/connections/nope/").status_code == 404


def test_another_users_flow_has_no_connection_dialog(client, bob, greeter):
    client.force_login(bob)
    response = client.get(f"/flows/{greeter.pk}/builder/connections/llm/")
    assert response.status_code == 404


def test_a_save_from_an_older_draft_is_refused_unless_overwriting(alice_client, greeter):
    page = alice_client.get(f"/flows/{greeter.pk}/builder/").content.decode()
    revision = page.split('data-revision="')[1].split('"')[0]
    first = save(alice_client, greeter, greeter_document("First"), revision=revision)
    assert first.status_code == 200
    stale = save(alice_client, greeter, greeter_document("Stale"), revision=revision)
    assert stale.status_code == 409
    assert "this draft was changed elsewhere" in stale.content.decode()
    assert Flow.objects.get(pk=greeter.pk).name == "First"
    forced = save(alice_client, greeter, greeter_document("Mine"), revision=revision, overwrite="1")
    assert forced.status_code == 200
    assert Flow.objects.get(pk=greeter.pk).name == "Mine"


def test_the_builder_loads_an_old_document_with_port_edges(alice_client, greeter):
    body = alice_client.get(f"/flows/{greeter.pk}/builder/").content.decode()
    document = json.loads(
        body.split('<script id="flow-document" type="application/json">')[1].split("</script>")[0]
    )
    assert document["schema"] == "flowbuilder/flow@2"
    assert document["edges"] == [["trigger", "out", "greet"]]


def test_a_missing_connection_is_reported_at_the_nodes_picker(alice_client, greeter):
    message = "step 'chat': capability 'llm.chat' needs a llm connection"
    body = alice_client.post(
        f"/flows/{greeter.pk}/builder/node/",
        {
            "step": json.dumps(chat("chat")),
            "errors": json.dumps([{"step": "chat", "field": "kind", "message": message}]),
        },
    ).content.decode()
    shown = escape(message)
    assert f'<p class="error" id="connection-llm-error">{shown}</p>' in body
    assert body.count("needs a llm connection") == 1
