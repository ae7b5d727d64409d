"""Secret settings are stored encrypted, decrypted only on the worker for a run, and redacted
from everything a run stores; exports carry neither their value nor its ciphertext."""

from __future__ import annotations

import json

from flows.document import export_document
from flows.engine import start_run
from flows.models import Flow, FlowVersion, LogLine, Run, StepRun

from .conftest import document

TOKEN = "sk-live-4f9a8b7c6d5e"
LEAKY = """
def main(event, ctx):
    ctx.log("calling with " + ctx.settings["api_token"])
    return {"header": "Bearer " + ctx.settings["api_token"]}
"""


def secret_document():
    return document(
        settings={"api_token": {"value": TOKEN, "secret": True, "required": True}},
        steps=[
            {"id": "use", "kind": "code.python", "config": {"source": LEAKY}},
            {
                "id": "say",
                "kind": "logic.template",
                "config": {
                    "template": "token {{ settings.api_token }} ends in "
                    "{{ settings.api_token[-4:] }}"
                },
            },
        ],
        edges=[],
    )


def test_a_secret_setting_is_stored_encrypted_and_a_run_uses_it_without_storing_it(make_flow):
    flow = make_flow(secret_document())
    stored = json.dumps(Flow.objects.get(pk=flow.pk).document)
    plan = json.dumps(FlowVersion.objects.get(flow=flow).plan)
    assert TOKEN not in stored and TOKEN not in plan
    assert '"sealed"' in stored

    run, _ = start_run(flow, trigger="manual", event={})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.output == {"text": "token [redacted] ends in 6d5e"}  # the run had the real value
    kept = json.dumps(
        [list(StepRun.objects.filter(run=run).values("input", "output", "error"))]
        + list(LogLine.objects.filter(run=run).values_list("message", flat=True))
        + [run.output]
    )
    assert TOKEN not in kept
    assert "calling with [redacted]" in kept
    assert "Bearer [redacted]" in kept


def test_an_export_carries_neither_the_secret_nor_its_ciphertext(make_flow):
    flow = make_flow(secret_document())
    exported = export_document(Flow.objects.get(pk=flow.pk).document)
    assert exported["settings"]["api_token"] == {"value": "", "secret": True, "required": True}
