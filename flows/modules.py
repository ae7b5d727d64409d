"""A user's uploaded Wasm modules: upload (the browser's and `manage.py sandbox upload`'s one
path), what each module asks for, and deletion, refused while a flow uses the module.

Modules are content-addressed: the bytes live once in the artifact store under their sha256,
and each owner has a row (an Artifact) naming it. Deleting the last row removes the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import transaction

from flows.models import Artifact, Flow
from flows.sandbox import load_artifact, module_capabilities, store_artifact
from flows.sandbox.artifacts import ModuleSummary, artifact_dir, summarize_module

MAX_NAME = 200


class ModuleInUse(Exception):
    """The module is part of flows (their draft or a deployed version): it cannot be deleted."""

    def __init__(self, artifact: Artifact, flows: list[Flow]):
        self.flows = flows
        names = ", ".join(f"“{flow.name}”" for flow in flows)
        where = "that flow (and its" if len(flows) == 1 else "those flows (and their"
        super().__init__(
            f"{artifact.name} is used by {names}: remove it from {where} deployed versions) first"
        )


@dataclass
class ModuleDetails:
    """What the builder shows about a module: its imports and memory, and the capabilities it
    declares (those the step must grant)."""

    artifact: Artifact
    summary: ModuleSummary
    capabilities: list[str]


def upload_module(owner, name: str, data: bytes) -> Artifact:
    """Checks a module against the ABI (SandboxError says what is wrong), stores it and records
    it for `owner`; uploading the same bytes again only renames it."""
    capabilities = module_capabilities(data)
    digest = store_artifact(data)
    artifact, _ = Artifact.objects.update_or_create(
        owner=owner,
        digest=digest,
        defaults={
            "name": (name or "module.wasm")[:MAX_NAME],
            "size": len(data),
            "imports": capabilities,
        },
    )
    return artifact


def module_details(artifact: Artifact) -> ModuleDetails:
    data = load_artifact(artifact.digest)
    return ModuleDetails(artifact, summarize_module(data), module_capabilities(data))


def flows_using(artifact: Artifact) -> list[Flow]:
    """The owner's flows whose draft or any deployed version runs the module."""
    using = []
    flows = Flow.objects.owned_by(artifact.owner).prefetch_related("versions").order_by("name")
    for flow in flows:
        documents = [flow.document, *(version.plan for version in flow.versions.all())]
        if any(artifact.digest in json.dumps(document) for document in documents):
            using.append(flow)
    return using


def delete_module(artifact: Artifact) -> None:
    """Deletes the owner's module, refused (ModuleInUse) while a flow uses it."""
    with transaction.atomic():
        flows = flows_using(artifact)
        if flows:
            raise ModuleInUse(artifact, flows)
        artifact.delete()
        shared = Artifact.objects.filter(digest=artifact.digest).exists()
    if not shared:
        (artifact_dir() / f"{artifact.digest}.wasm").unlink(missing_ok=True)
