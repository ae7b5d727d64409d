"""The builder page, its node forms generated from block declarations, save with compiler errors
placed on nodes and fields, deploy, sample events and test runs of the draft."""

import hashlib
import json

from django.core.files.uploadedfile import SimpleUploadedFile
from wasmtime import wat2wasm

from flows.catalog import blocks_by_category
from flows.models import Artifact, Run
from flows.sandbox.artifacts import declare_capabilities
from web.views.builder import draft_revision

from .conftest import greeter_document


def test_builder_shows_the_palette_by_kind_and_the_document(alice_client, greeter):
    body = alice_client.get(f"/flows/{greeter.pk}/builder/").content.decode()
    for category, title in (("integration", "Integrations"), ("logic", "Logic"), ("code", "Code")):
        assert f'<h3 class="h5">{title}</h3>' in body
        for block in blocks_by_category()[category]:
            assert f'data-kind="{block.kind}"' in body
    # Triggers are chosen on the trigger node, not added as steps.
    assert 'data-kind="trigger.webhook"' not in body
    assert '<script id="flow-document" type="application/json">' in body
    assert '"greet"' in body


def node_form(client, flow, step: dict, errors: list | None = None) -> str:
    response = client.post(
        f"/flows/{flow.pk}/builder/node/",
        {"step": json.dumps(step), "errors": json.dumps(errors or [])},
    )
    assert response.status_code == 200
    return response.content.decode()


def test_a_python_step_gets_a_code_editor_grants_and_limits(alice_client, greeter):
    body = node_form(
        alice_client,
        greeter,
        {
            "id": "review",
            "kind": "code.python",
            "config": {"source": "def main(event, ctx):\n    return 1\n"},
            "grants": ["llm.chat"],
            "limits": {"timeout_s": 120},
        },
    )
    assert 'data-code="python"' in body
    assert "def main(event, ctx):\n    return 1\n</textarea>" in body
    assert '<input type="checkbox" data-grant value="llm.chat" checked>' in body
    assert 'data-grant value="github.pr.files" >' in body
    assert 'data-limit="timeout_s" min="1" value="120"' in body


def test_templated_fields_are_marked_and_widgets_follow_param_types(alice_client, greeter):
    body = node_form(
        alice_client,
        greeter,
        {"id": "store", "kind": "kv.set", "config": {"key": "pr-1", "value": {"a": 1}}},
    )
    assert 'Key <span class="required">(required)</span> <span class="chip template-chip"' in body
    assert 'data-type="json"' in body
    assert "{\n  &quot;a&quot;: 1\n}</textarea>" in body
    assert 'type="number" id="param-ttl_seconds"' in body


def test_trigger_node_offers_every_trigger_kind(alice_client, greeter):
    body = node_form(
        alice_client, greeter, {"id": "trigger", "kind": "trigger.manual", "config": {}}
    )
    for block in blocks_by_category()["trigger"]:
        assert f'<option value="{block.kind}"' in body
    assert "Delete step" not in body


def test_errors_appear_next_to_their_field(alice_client, greeter):
    body = node_form(
        alice_client,
        greeter,
        {"id": "greet", "kind": "logic.template", "config": {}},
        [
            {
                "step": "greet",
                "field": "template",
                "message": "step 'greet': 'template' is required",
            },
            {"step": "greet", "field": "", "message": "step 'greet': something general"},
        ],
    )
    assert 'aria-invalid="true"' in body
    assert (
        '<p class="error" id="param-template-error">step &#x27;greet&#x27;: &#x27;template&#x27; is required</p>'
        in body
    )
    assert "<li>step &#x27;greet&#x27;: something general</li>" in body


def test_save_stores_the_draft_and_reports_errors_per_node(alice_client, greeter):
    document = greeter_document()
    document["steps"][0]["config"] = {}
    document["layout"]["greet"] = {"x": 420, "y": 200}
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/save/",
        {"document": json.dumps(document)},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert "Draft saved, but it cannot be deployed yet: 1 problem." in body
    trigger = json.loads(response["HX-Trigger"])
    [error] = trigger["flow-errors"]["errors"]
    assert (error["step"], error["field"]) == ("greet", "template")
    greeter.refresh_from_db()
    assert greeter.document["layout"]["greet"] == {"x": 420, "y": 200}


def test_save_without_errors_says_it_is_ready(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/save/",
        {"document": json.dumps(greeter_document("Hello bot"))},
    )
    assert "Saved at " in response.content.decode()
    assert ": ready to deploy." in response.content.decode()
    events = json.loads(response["HX-Trigger"])
    assert events["flow-errors"] == {"errors": []}
    greeter.refresh_from_db()
    assert greeter.name == "Hello bot"
    # The canvas learns the revision of the draft it saved, for its next save.
    assert events["flow-saved"]["revision"] == draft_revision(greeter.document)


def test_a_broken_document_is_refused_in_plain_words(alice_client, greeter):
    response = alice_client.post(f"/flows/{greeter.pk}/builder/save/", {"document": "{nope"})
    assert response.status_code == 400
    assert "The flow could not be read: Expecting property name enclosed in double quotes" in (
        response.content.decode()
    )
    greeter.refresh_from_db()
    assert greeter.document == greeter_document()


def test_deploy_from_the_builder(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/deploy/", {"document": json.dumps(greeter_document())}
    )
    assert "Deployed version 1." in response.content.decode()
    assert greeter.versions.get().number == 1


def test_sample_events_come_from_real_github_payloads_and_earlier_runs(alice_client, greeter):
    body = alice_client.get(
        f"/flows/{greeter.pk}/builder/sample/?sample=github:pull_request.opened"
    ).content.decode()
    assert "&quot;name&quot;: &quot;pull_request&quot;" in body
    assert "&quot;full_name&quot;: &quot;Codertocat/Hello-World&quot;" in body
    run = Run.objects.create(flow=greeter, trigger="manual", event={"name": "from a run"})
    page = alice_client.get(f"/flows/{greeter.pk}/builder/").content.decode()
    assert f'<option value="run:{run.pk}">Run #{run.pk}' in page
    assert '<option value="github:issue_comment.created">' in page
    body = alice_client.get(
        f"/flows/{greeter.pk}/builder/sample/?sample=run:{run.pk}"
    ).content.decode()
    assert "&quot;name&quot;: &quot;from a run&quot;" in body


def test_test_run_starts_a_draft_run_on_the_event_and_streams_it(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/test/",
        {"document": json.dumps(greeter_document()), "event": '{"name": "Ada"}'},
    )
    run = Run.objects.get(flow=greeter)
    assert (run.trigger, run.version, run.event) == ("manual", None, {"name": "Ada"})
    body = response.content.decode()
    assert f'ws-connect="/ws/runs/{run.pk}/"' in body
    assert f'id="run-{run.pk}-step-greet"' in body


def test_test_run_explains_a_bad_event(alice_client, greeter):
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/test/",
        {"document": json.dumps(greeter_document()), "event": '{"name": '},
    )
    assert response.status_code == 400
    assert "The event is not valid JSON: Expecting value at line 1." in response.content.decode()
    assert not Run.objects.exists()


MODULE_WAT = """(module
  (import "flowbuilder" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $at))
  (data (i32.const 16) "{}")
  (func (export "run") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 2))))"""


def upload(client, flow, name: str, data: bytes):
    return client.post(
        f"/flows/{flow.pk}/builder/upload/",
        {"module": SimpleUploadedFile(name, data, content_type="application/wasm")},
    )


def test_uploading_a_wasm_module_stores_it_and_fills_in_its_digest(
    alice_client, alice, greeter, tmp_path, settings
):
    settings.FLOWS_ARTIFACT_DIR = tmp_path
    data = declare_capabilities(wat2wasm(MODULE_WAT), ["kv.get"])
    response = upload(alice_client, greeter, "greeter.wasm", data)
    artifact = Artifact.objects.get(owner=alice)
    assert artifact.digest == hashlib.sha256(data).hexdigest()
    assert (artifact.name, artifact.size, artifact.imports) == (
        "greeter.wasm",
        len(data),
        ["kv.get"],
    )
    body = response.content.decode()
    assert "Uploaded <strong>greeter.wasm</strong>: it follows the Flowbuilder ABI." in body
    assert f"<dt>Size</dt><dd>{len(data)}\xa0bytes</dd>" in body
    assert f'<code class="digest">{artifact.digest}</code>' in body
    assert "<dt>Imports</dt><dd><code>flowbuilder.log</code></dd>" in body
    assert "<dt>Capabilities it may call</dt><dd><code>kv.get</code></dd>" in body
    assert 'data-grant-module="[&quot;kv.get&quot;]">Grant kv.get to this step</button>' in body
    event = json.loads(response["HX-Trigger"])["artifact-uploaded"]
    assert event == {"digest": artifact.digest, "name": "greeter.wasm", "imports": ["kv.get"]}
    form = node_form(alice_client, greeter, {"id": "module", "kind": "code.wasm", "config": {}})
    assert f'hx-post="/flows/{greeter.pk}/builder/upload/"' in form
    assert f'<option value="{artifact.digest}" >greeter.wasm · {artifact.digest[:12]}</option>' in (
        form
    )


def test_a_file_that_is_not_wasm_is_refused_in_plain_words(
    alice_client, greeter, tmp_path, settings
):
    settings.FLOWS_ARTIFACT_DIR = tmp_path
    response = upload(alice_client, greeter, "notes.txt", b"hello")
    assert response.status_code == 400
    assert (
        "notes.txt was not uploaded: not a WebAssembly module: it does not start with the "
        "\\0asm magic bytes" in response.content.decode()
    )
    assert not Artifact.objects.exists()


def test_the_starting_event_follows_the_trigger(alice_client, greeter):
    greeter.document["trigger"] = {"kind": "trigger.telegram", "config": {}}
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/builder/sample/?sample=default").content.decode()
    assert "&quot;chat_id&quot;: 123456789" in body
    assert "&quot;text&quot;: &quot;Hello bot&quot;" in body
    page = alice_client.get(f"/flows/{greeter.pk}/builder/").content.decode()
    assert "&quot;name&quot;: &quot;message&quot;" in page
