"""Uploaded modules as a user manages them: refused at upload with the reason (missing export,
wrong signature, an import we do not provide, memory over the limit), chosen again from the
builder, uploaded from the command line, and deleted only when no flow uses them."""

from __future__ import annotations

import html
import io
import json

import pytest
from django.core.management import CommandError, call_command
from wasmtime import wat2wasm

from flows.models import Artifact, Flow
from flows.sandbox.artifacts import declare_capabilities

from .test_builder import MODULE_WAT, node_form, upload

ALLOC = """(func (export "alloc") (param i32) (result i32) (i32.const 1024))"""
RUN = """(func (export "run") (param i32 i32) (result i64) (i64.const 0))"""


def module(*parts: str, memory: str = '(memory (export "memory") 1)') -> bytes:
    return wat2wasm("(module " + " ".join([*parts[:-2], memory, *parts[-2:]]) + ")")


REFUSED = {
    "a missing export": (
        module(ALLOC, ""),
        "the module does not export a function 'run' (see docs/wasm-abi.md)",
    ),
    "a wrong signature": (
        module(ALLOC, '(func (export "run") (param i32) (result i32) (i32.const 0))'),
        "the module's 'run' has the signature (i32) -> (i32), not (i32, i32) -> (i64) "
        "(see docs/wasm-abi.md)",
    ),
    "an import we do not provide": (
        module('(import "env" "fetch" (func (param i32)))', ALLOC, RUN),
        "the module imports 'env.fetch', which Flowbuilder does not provide (see docs/wasm-abi.md)",
    ),
    "memory over the limit": (
        module(ALLOC, RUN, memory='(memory (export "memory") 20000)'),
        "the module's memory starts at 1.2 GB (20,000 pages of 64 KiB); steps on this server "
        "may use at most 1 GB (FLOWS_STEP_MEMORY_MIB_MAX)",
    ),
    "a 64-bit memory": (
        module(ALLOC, RUN, memory='(memory (export "memory") i64 1)'),
        "the module declares a 64-bit memory; steps run with 32-bit memory (see docs/wasm-abi.md)",
    ),
}


@pytest.fixture(autouse=True)
def artifact_dir(settings, tmp_path):
    settings.FLOWS_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.FLOWS_ARTIFACT_DIR


@pytest.mark.parametrize("case", REFUSED)
def test_a_module_that_breaks_the_abi_is_refused_at_upload_with_the_reason(
    case, alice_client, greeter, artifact_dir
):
    data, reason = REFUSED[case]
    response = upload(alice_client, greeter, "step.wasm", data)
    assert response.status_code == 400
    assert f"step.wasm was not uploaded: {reason}" in html.unescape(response.content.decode())
    assert not Artifact.objects.exists()
    assert not list(artifact_dir.glob("*.wasm"))


def test_a_module_uploaded_before_is_chosen_again_with_its_details(
    alice_client, bob, greeter, client
):
    data = declare_capabilities(wat2wasm(MODULE_WAT), ["kv.get"])
    digest = json.loads(upload(alice_client, greeter, "greeter.wasm", data)["HX-Trigger"])[
        "artifact-uploaded"
    ]["digest"]
    response = alice_client.get("/modules/choose/", {"digest": digest})
    assert "This step runs <strong>greeter.wasm</strong>" in response.content.decode()
    assert json.loads(response["HX-Trigger"])["artifact-uploaded"]["digest"] == digest
    # A step that names the module shows it when its form opens.
    form = node_form(
        alice_client, greeter, {"id": "m", "kind": "code.wasm", "config": {"artifact": digest}}
    )
    assert f'<code class="digest">{digest}</code>' in form
    assert f'<option value="{digest}" selected>greeter.wasm' in form
    # Another user cannot read it.
    client.force_login(bob)
    assert client.get("/modules/choose/", {"digest": digest}).status_code == 404


def test_the_command_line_upload_takes_the_same_checks_and_lands_in_the_builder(
    alice, alice_client, greeter, tmp_path
):
    path = tmp_path / "greeter.wasm"
    path.write_bytes(declare_capabilities(wat2wasm(MODULE_WAT), ["kv.get"]))
    out = io.StringIO()
    call_command("sandbox", "upload", str(path), "--owner", "alice", stdout=out)
    artifact = Artifact.objects.get(owner=alice)
    assert out.getvalue().strip() == (
        f"Uploaded greeter.wasm for alice: sha256 {artifact.digest}, {artifact.size:,} bytes; "
        "capabilities it calls: kv.get"
    )
    form = node_form(alice_client, greeter, {"id": "m", "kind": "code.wasm", "config": {}})
    assert f'<option value="{artifact.digest}" >greeter.wasm' in form

    path.write_bytes(REFUSED["an import we do not provide"][0])
    with pytest.raises(CommandError) as refused:
        call_command("sandbox", "upload", str(path), "--owner", "alice")
    assert str(refused.value) == (
        f"{path} was not uploaded: the module imports 'env.fetch', which Flowbuilder does not "
        "provide (see docs/wasm-abi.md)"
    )
    with pytest.raises(CommandError, match="there is no user named 'carol'"):
        call_command("sandbox", "upload", str(path), "--owner", "carol")


def test_deleting_a_module_in_use_is_refused_naming_the_flows(
    alice, alice_client, greeter, artifact_dir
):
    data = wat2wasm(MODULE_WAT)
    upload(alice_client, greeter, "greeter.wasm", data)
    artifact = Artifact.objects.get(owner=alice)
    Flow.objects.create(
        owner=alice,
        name="Shouter",
        slug="shouter",
        document={
            "steps": [{"id": "m", "kind": "code.wasm", "config": {"artifact": artifact.digest}}]
        },
    )
    page = alice_client.get("/modules/").content.decode()
    assert f'<a href="/flows/{Flow.objects.get(name="Shouter").pk}/builder/">Shouter</a>' in page

    response = alice_client.post(f"/modules/{artifact.pk}/delete/", follow=True)
    assert (
        "Not deleted: greeter.wasm is used by “Shouter”: remove it from that flow (and its "
        "deployed versions) first." in html.unescape(response.content.decode())
    )
    assert Artifact.objects.filter(pk=artifact.pk).exists()

    Flow.objects.filter(name="Shouter").delete()
    response = alice_client.post(f"/modules/{artifact.pk}/delete/", follow=True)
    assert "Deleted the module greeter.wasm." in response.content.decode()
    assert not Artifact.objects.exists()
    assert not (artifact_dir / f"{artifact.digest}.wasm").exists()


def test_a_module_another_owner_also_uploaded_keeps_its_bytes(
    alice, bob, alice_client, client, greeter, artifact_dir
):
    data = wat2wasm(MODULE_WAT)
    upload(alice_client, greeter, "greeter.wasm", data)
    client.force_login(bob)
    client.post("/modules/", {"module": io.BytesIO(data)})
    assert Artifact.objects.filter(owner=bob).exists()
    mine = Artifact.objects.get(owner=alice)
    alice_client.post(f"/modules/{mine.pk}/delete/")
    assert (artifact_dir / f"{mine.digest}.wasm").is_file()
    assert client.post(f"/modules/{mine.pk}/delete/").status_code == 404
