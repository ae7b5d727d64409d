"""Uploaded Wasm modules as steps: the compiler checks their declared capabilities against the
step's grants, and the engine runs them with only those capabilities bound."""

import pytest

from flows.compiler import CompileError, compile_document
from flows.engine import start_run
from flows.models import Artifact, Run
from flows.sandbox import store_artifact
from tests.wasm_guests import GUESTS, build_freestanding_c

from .conftest import document

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def echo_wasm(tmp_path_factory) -> bytes:
    """A C guest of the sandbox's tests: logs, calls kv.get, returns its input and the result."""
    return build_freestanding_c(GUESTS / "echo.c", tmp_path_factory.mktemp("wasm") / "echo.wasm")


@pytest.fixture
def echo_digest(echo_wasm, user, settings, tmp_path) -> str:
    settings.FLOWS_ARTIFACT_DIR = tmp_path / "artifacts"
    digest = store_artifact(echo_wasm)
    Artifact.objects.create(owner=user, digest=digest, name="echo.wasm", size=len(echo_wasm))
    return digest


def wasm_flow(digest: str, grants: list[str]) -> dict:
    return document(
        steps=[
            {"id": "remember", "kind": "kv.set", "config": {"key": "greeting", "value": "hi"}},
            {"id": "echo", "kind": "code.wasm", "config": {"artifact": digest}, "grants": grants},
        ],
        edges=[],
    )


def test_a_module_runs_with_its_granted_capabilities(make_flow, echo_digest):
    flow = make_flow(wasm_flow(echo_digest, ["kv.get"]))
    run, _ = start_run(flow, trigger="webhook", event={"n": 1})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    # The module gets {"event", "context"} (docs/wasm-abi.md) and echoes it with kv.get's answer.
    assert run.output["input"]["event"] == {"n": 1}
    assert run.output["input"]["context"]["steps"] == {
        "remember": {"key": "greeting", "value": "hi"}
    }
    assert run.output["kv"] == {"ok": "hi"}
    assert list(run.log_lines.values_list("step_id", "message")) == [("echo", "echo: hello from C")]


def test_a_module_needing_an_ungranted_capability_is_not_deployed(user, echo_digest):
    with pytest.raises(CompileError) as caught:
        compile_document(wasm_flow(echo_digest, []), user)
    assert caught.value.errors == [
        "step 'echo': the module needs capability 'kv.get', which this step does not grant"
    ]
    assert caught.value.errors[0].field == "grants"


def test_another_users_module_cannot_be_used(other_user, echo_digest):
    with pytest.raises(CompileError) as caught:
        compile_document(wasm_flow(echo_digest, ["kv.get"]), other_user)
    assert caught.value.errors == [
        f"step 'echo': module '{echo_digest[:12]}' is not among your uploaded modules"
    ]
