"""Steps written with the SDKs (docs/sdk/), built from source, uploaded as a user uploads them,
deployed in a flow from the builder and run by the engine: their output, their log lines and
the capability calls they make (the flow's key-value store, GitHub through the fake)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from flows.engine import start_run
from flows.models import Artifact, LogLine, Run, StepRun
from integrations.models import Connection
from tests.fakes.github import FakeGitHub
from tests.wasm_guests import prompt_builder_python
from tests.workloads import PR_NUMBER, PR_REPO, pull_request_event, pull_request_files

WORD_COUNTS = ["rust", "c", "zig", "assemblyscript"]


@pytest.fixture(autouse=True)
def runs_inline(settings, tmp_path):
    settings.FLOWS_EXECUTOR = "inline"
    settings.FLOWS_ARTIFACT_DIR = tmp_path / "artifacts"


def upload(client, flow, name: str, data: bytes) -> str:
    """Uploads through the builder's Wasm node, as the page does; returns the module's digest."""
    response = client.post(
        f"/flows/{flow.pk}/builder/upload/",
        {"module": SimpleUploadedFile(name, data, content_type="application/wasm")},
    )
    assert response.status_code == 200, response.content.decode()
    return json.loads(response["HX-Trigger"])["artifact-uploaded"]["digest"]


def deploy(client, flow, document: dict) -> None:
    response = client.post(f"/flows/{flow.pk}/builder/deploy/", {"document": json.dumps(document)})
    assert "Deployed version" in response.content.decode(), response.content.decode()
    flow.refresh_from_db()


def module_flow(name: str, digest: str, grants: list[str], **extra) -> dict:
    return {
        "schema": "flowbuilder/flow@1",
        "name": name,
        "trigger": {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "connections": {},
        "steps": [
            {
                "id": "step",
                "kind": "code.wasm",
                "config": {"artifact": digest},
                "grants": grants,
            }
        ],
        "edges": [["trigger", "step"]],
        **extra,
    }


def run_flow(flow, event) -> Run:
    run, _ = start_run(flow, trigger="manual", event=event)
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("language", WORD_COUNTS)
def test_a_word_count_step_in_each_language_runs_in_a_flow(
    language, sdk_modules, alice_client, alice, greeter
):
    data = sdk_modules[f"{language}_word_count"]
    digest = upload(alice_client, greeter, f"word_count_{language}.wasm", data)
    assert Artifact.objects.get(owner=alice, digest=digest).imports == ["kv.get", "kv.set"]
    deploy(alice_client, greeter, module_flow("Words", digest, ["kv.get", "kv.set"]))

    first = run_flow(greeter, {"text": "the quick brown fox\njumps  over"})
    assert first.status == Run.Status.SUCCEEDED, first.error
    assert first.output == {"words": 6, "total": 6, "shout": "THE QUICK BROWN FOX\nJUMPS  OVER"}
    assert list(LogLine.objects.filter(run=first).values_list("level", "message")) == [
        ("info", "counted 6 words")
    ]
    # The total lives in the flow's key-value store, through kv.get and kv.set.
    second = run_flow(greeter, {"text": "lazy dog"})
    assert second.output == {"words": 2, "total": 8, "shout": "LAZY DOG"}

    failed = run_flow(greeter, {"body": "no text"})
    assert failed.status == Run.Status.FAILED
    assert StepRun.objects.get(run=failed).error == 'the event has no "text" string'


def test_a_module_without_its_grants_is_not_deployed(sdk_modules, alice_client, greeter):
    digest = upload(alice_client, greeter, "word_count.wasm", sdk_modules["rust_word_count"])
    response = alice_client.post(
        f"/flows/{greeter.pk}/builder/deploy/",
        {"document": json.dumps(module_flow("Words", digest, ["kv.get"]))},
    )
    assert "the module needs capability &#x27;kv.set&#x27;, which this step does not grant" in (
        response.content.decode()
    )
    assert not greeter.versions.exists()


@pytest.fixture
def github(settings):
    with FakeGitHub() as fake:
        settings.FLOWS_GITHUB_API_URL = fake.url
        fake.add_pull(PR_REPO, PR_NUMBER, title="Cart totals", files=pull_request_files())
        yield fake


def test_the_rust_prompt_builder_builds_the_same_prompts_as_the_code_review_bot(
    sdk_modules, alice_client, alice, greeter, github
):
    connection = Connection(owner=alice, service="github", name="GitHub", config={})
    connection.set_secrets({"token": github.token})
    connection.save()
    digest = upload(
        alice_client, greeter, "prompt_builder.wasm", sdk_modules["rust_prompt_builder"]
    )
    document = module_flow(
        "Prompts",
        digest,
        ["github.pr.files"],
        settings={"context_size": {"value": 4000}, "max_files": {"value": 40}},
        connections={"github": {"service": "github", "connection": connection.pk}},
    )
    # Beside it, the Code Review Bot's own Python (plan.py's functions) on the same event.
    document["steps"].append(
        {
            "id": "python",
            "kind": "code.python",
            "config": {"source": prompt_builder_python()},
            "grants": ["github.pr.files"],
        }
    )
    document["edges"].append(["trigger", "python"])
    deploy(alice_client, greeter, document)

    run = run_flow(greeter, pull_request_event())
    assert run.status == Run.Status.SUCCEEDED, run.error
    outputs = dict(StepRun.objects.filter(run=run).values_list("step_id", "output"))
    output = outputs["step"]
    assert (output["repo"], output["number"], output["part_chars"]) == (PR_REPO, PR_NUMBER, 8400)
    skipped = dict(map(tuple, output["skipped"]))
    assert skipped["package-lock.json"] == "ignored by the pattern `package-lock.json`"
    assert skipped["vendor/lib/util.go"] == "ignored by the pattern `vendor/*`"
    assert skipped["static/app.min.js"] == "ignored by the pattern `*.min.js`"
    assert skipped["docs/old.md"] == "deleted"
    assert skipped["assets/logo.png"] == "binary, or too large for GitHub to show a diff"
    assert skipped["shop/new_name.py"] == "renamed from `shop/old_name.py` without changes"
    assert skipped["shop/cart/module_50.py"] == "over the limit of 40 files"
    items = {item["path"]: item for item in output["items"]}
    assert len(items) == 40
    assert len(items["shop/cart/big.py"]["parts"]) == 5
    assert items["shop/cart/big.py"]["truncated"] == (
        "reviewed the first 559 of 900 changed lines (5 parts of the model's context)"
    )
    assert items["shop/cart/long.py"]["truncated"] == (
        "1 very long lines were shortened to 400 characters"
    )
    prompt = items["shop/i18n/messages.py"]["parts"][0]["prompt"]
    assert prompt.startswith(
        "Review the changes to `shop/i18n/messages.py` (renamed from `shop/msgs.py`).\n"
    )
    assert '    1 +GREETING = "Grüß Gott, ça va? 👋"' in prompt
    prompts = sum(len(item["parts"]) for item in output["items"])
    assert list(
        LogLine.objects.filter(run=run, step_id="step").values_list("message", flat=True)
    ) == [f"40 files to review in {prompts} prompts; {len(output['skipped'])} skipped"]
    assert output == outputs["python"]
