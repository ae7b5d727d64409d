"""The template gallery: templates ship as folders in flow_templates/, set-up loads them into the
database, and "use template" copies one into a user's flows.

A template folder holds `flow.json` (a flow document) and the Python sources of its code steps: a
`code.python` step names its file with `"source_file": "review.py"` and the loader inlines the
text as the step's `source`, so the document a user gets is self-contained and editable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from flows.models import Flow, document_hash

from .models import Template

# Gallery order: the flagship first; templates not listed here follow by slug.
ORDER = (
    "code-review-bot",
    "pr-summary-labeler",
    "issue-triage",
    "telegram-chat-bot",
    "daily-digest",
    "repository-assistant",
)


class TemplateError(Exception):
    """A template folder that cannot be loaded (names the folder and the problem)."""


class TemplateNotFound(LookupError):
    pass


@dataclass(frozen=True)
class TemplateSetting:
    name: str
    description: str
    default: Any
    required: bool


@dataclass(frozen=True)
class TemplateSpec:
    slug: str
    name: str
    description: str
    trigger: str
    services: list[str]
    settings: list[TemplateSetting]
    document: dict


def templates_dir() -> Path:
    return Path(settings.FLOWS_TEMPLATES_DIR)


def read_template(folder: Path) -> TemplateSpec:
    """Read one template folder into a spec, inlining its step sources."""
    slug = folder.name
    try:
        document = json.loads((folder / "flow.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TemplateError(f"template '{slug}': missing flow.json") from exc
    except json.JSONDecodeError as exc:
        raise TemplateError(f"template '{slug}': flow.json is not valid JSON: {exc}") from exc
    for step in document.get("steps", []):
        config = step.get("config", {})
        source_file = config.pop("source_file", None)
        if source_file is None:
            continue
        path = folder / source_file
        if path.parent != folder or not path.is_file():
            raise TemplateError(f"template '{slug}': step '{step.get('id')}' names {source_file}")
        source = path.read_text(encoding="utf-8")
        try:
            compile(source, str(path), "exec")
        except SyntaxError as exc:
            raise TemplateError(
                f"template '{slug}': {source_file} line {exc.lineno}: {exc.msg}"
            ) from exc
        config["source"] = source
    for key in ("name", "description", "trigger", "steps"):
        if not document.get(key):
            raise TemplateError(f"template '{slug}': flow.json has no {key}")
    return TemplateSpec(
        slug=slug,
        name=document["name"],
        description=document["description"],
        trigger=document["trigger"]["kind"],
        services=sorted(
            {c["service"] for c in document.get("connections", {}).values() if c.get("service")}
        ),
        settings=[
            TemplateSetting(
                name=name,
                description=spec.get("description", ""),
                default=spec.get("value"),
                required=bool(spec.get("required", False)),
            )
            for name, spec in document.get("settings", {}).items()
        ],
        document=document,
    )


def read_templates() -> list[TemplateSpec]:
    """All templates in the repository's flow_templates/ folder, in gallery order."""
    folders = [p for p in templates_dir().iterdir() if (p / "flow.json").is_file()]
    specs = [read_template(folder) for folder in folders]
    return sorted(specs, key=lambda s: (_position(s.slug), s.slug))


def _position(slug: str) -> int:
    return ORDER.index(slug) if slug in ORDER else len(ORDER)


@dataclass(frozen=True)
class LoadReport:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]

    def __str__(self) -> str:
        total = len(self.created) + len(self.updated) + len(self.unchanged)
        return (
            f"{total} templates in the gallery: {len(self.created)} new, "
            f"{len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed"
        )


def load_templates(using: str = "default") -> LoadReport:
    """Bring the gallery in line with flow_templates/ (idempotent: unchanged rows stay as they are)."""
    specs = read_templates()
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    rows = Template.objects.using(using)
    with transaction.atomic(using=using):
        existing = {t.slug: t for t in rows.all()}
        for spec in specs:
            fields = {
                "name": spec.name,
                "description": spec.description,
                "position": _position(spec.slug),
                "trigger": spec.trigger,
                "services": spec.services,
                "settings": [s.__dict__ for s in spec.settings],
                "document": spec.document,
                "content_hash": document_hash(spec.document),
            }
            row = existing.pop(spec.slug, None)
            if row is None:
                rows.create(slug=spec.slug, **fields)
                created.append(spec.slug)
            elif any(getattr(row, k) != v for k, v in fields.items()):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.save(using=using)
                updated.append(spec.slug)
            else:
                unchanged.append(spec.slug)
        removed = sorted(existing)
        rows.filter(slug__in=removed).delete()
    return LoadReport(created, updated, unchanged, removed)


def _spec(row: Template) -> TemplateSpec:
    return TemplateSpec(
        slug=row.slug,
        name=row.name,
        description=row.description,
        trigger=row.trigger,
        services=list(row.services),
        settings=[TemplateSetting(**s) for s in row.settings],
        document=row.document,
    )


def list_templates() -> list[TemplateSpec]:
    """The gallery, flagship first."""
    return [_spec(row) for row in Template.objects.all()]


def get_template(slug: str) -> TemplateSpec:
    row = Template.objects.filter(slug=slug).first()
    if row is None:
        raise TemplateNotFound(f"No template named '{slug}' in the gallery.")
    return _spec(row)


def use_template(slug: str, user) -> Flow:
    """Copy a template into the user's flows: an independent draft the user then configures."""
    from integrations.models import Connection

    spec = get_template(slug)
    document = spec.document
    # A service the user has connected exactly once is bound right away; otherwise they choose.
    for alias in document.get("connections", {}).values():
        if alias.get("connection") is None and alias.get("service"):
            ids = list(
                Connection.objects.owned_by(user)
                .filter(service=alias["service"])
                .values_list("id", flat=True)[:2]
            )
            if len(ids) == 1:
                alias["connection"] = ids[0]
    tries = 3
    while True:
        try:
            with transaction.atomic():
                return Flow.objects.create(
                    owner=user,
                    name=spec.name,
                    slug=Flow.objects.unique_slug(user, spec.name),
                    description=spec.description,
                    document=document,
                    template=slug,
                )
        except IntegrityError:
            # Another request took the same slug a moment ago: pick the next free one.
            tries -= 1
            if not tries:
                raise
