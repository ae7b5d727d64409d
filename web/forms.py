"""Forms of the web pages, and the builder's node form generated from a block declaration."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django import forms

from flows import capabilities
from flows.catalog import Block, Param, get_block
from flows.connections import with_article
from flows.document import import_document
from flows.models import Flow, Run
from integrations import jsonlimits
from integrations.models import Connection

# The largest flow file an import reads; real flows are a few kilobytes.
IMPORT_MAX_BYTES = 1_048_576


class NewFlowForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Name of the new flow",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Triage new issues"}),
    )


class ImportFlowForm(forms.Form):
    """A flow document (as `manage.py flows export` writes it), uploaded or pasted."""

    file = forms.FileField(
        required=False,
        label="Flow file (.json)",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    text = forms.CharField(
        required=False,
        label="Or paste the JSON",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "mono"}),
    )
    name = forms.CharField(
        required=False,
        max_length=200,
        label="Name of the new flow",
        help_text="Leave empty to keep the name in the file.",
    )

    def clean(self) -> dict:
        data = super().clean()
        upload, text = data.get("file"), data.get("text") or ""
        if upload and text.strip():
            raise forms.ValidationError("Choose a file or paste JSON, not both.")
        if upload:
            if upload.size > IMPORT_MAX_BYTES:
                raise forms.ValidationError(
                    f"The file is larger than the limit of {IMPORT_MAX_BYTES:,} bytes."
                )
            raw, where = upload.read(), f"“{upload.name}”"
        elif text.strip():
            raw, where = text, "The pasted text"
        else:
            raise forms.ValidationError("Choose a flow file or paste its JSON.")
        try:
            document = jsonlimits.loads(raw)
        except UnicodeDecodeError:
            raise forms.ValidationError(f"{where} is not a text file.") from None
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from None
        except jsonlimits.TooDeep as exc:
            raise forms.ValidationError(f"{where} cannot be read: {exc}.") from None
        if not isinstance(document, dict):
            raise forms.ValidationError(
                f"{where} is JSON but not a flow document: it must be an object with a "
                '"schema", a "trigger" and "steps".'
            )
        data["document"], data["where"] = document, where
        return data

    def save(self, owner) -> Flow | None:
        """The new draft flow, or None with the document's problems added to the form."""
        try:
            return import_document(
                self.cleaned_data["document"], owner, self.cleaned_data.get("name") or ""
            )
        except ValueError as exc:
            self.add_error(
                None, f"{self.cleaned_data['where']} is not a flow document this server reads:"
            )
            self.problems = str(exc).split("; ")
            return None


class RunFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Run.Status.choices], required=False, label="Status"
    )
    trigger = forms.ChoiceField(required=False, label="Trigger")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, triggers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger"].choices = [("", "Any trigger")] + [(t, t) for t in triggers]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class ListField(forms.CharField):
    """A list of strings, one per line or separated by commas (as people paste them)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(str(v) for v in value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str]:
        return [item.strip() for item in re.split(r"[,\n]", str(value or "")) if item.strip()]


def setting_field(spec: dict) -> forms.Field:
    """A form field that keeps the setting's type: text, number, yes/no, list or JSON."""
    value = spec.get("value")
    common = {"required": bool(spec.get("required")), "help_text": spec.get("description", "")}
    if spec.get("secret"):
        return forms.CharField(
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            **{**common, "required": common["required"] and not (value or spec.get("sealed"))},
        )
    if isinstance(value, bool):
        return forms.BooleanField(initial=value, **{**common, "required": False})
    if isinstance(value, int):
        return forms.IntegerField(initial=value, **common)
    if isinstance(value, float):
        return forms.FloatField(initial=value, **common)
    if isinstance(value, list):
        return ListField(
            initial=value,
            **{
                **common,
                "help_text": with_hint(
                    common["help_text"], "One per line. Commas separate items too."
                ),
            },
        )
    if isinstance(value, dict):
        return forms.JSONField(initial=value, **common)
    return forms.CharField(initial="" if value is None else str(value), **common)


@dataclass
class MissingConnection:
    step: str
    service: str

    @property
    def title(self) -> str:
        return service_label(self.service)


def connection_needs(document: dict) -> tuple[dict[str, list[str]], list[MissingConnection]]:
    """Which steps use each connection alias of the document, and the steps that need a service
    the document has no connection for (they cannot deploy until it has one)."""
    aliases = {
        alias: spec.get("service")
        for alias, spec in (document.get("connections") or {}).items()
        if isinstance(spec, dict)
    }
    uses: dict[str, list[str]] = {}
    missing: list[MissingConnection] = []
    for step in document.get("steps") or []:
        if not isinstance(step, dict):
            continue
        block = get_block(str(step.get("kind", "")))
        if block is None:
            continue
        names = step.get("grants") if block.category == "code" else block.capabilities
        services = {
            cap.service
            for cap in (capabilities.get(str(n)) for n in names or [])
            if cap is not None and cap.service
        }
        step_id = str(step.get("id", ""))
        for service in sorted(services):
            chosen = step.get("connection")
            if chosen in aliases and aliases[chosen] == service:
                candidates = [chosen]
            else:
                candidates = [a for a, s in aliases.items() if s == service]
            if not candidates:
                missing.append(MissingConnection(step_id, service))
            for alias in candidates:
                uses.setdefault(alias, []).append(step_id)
    return uses, missing


class FlowSetupForm(forms.Form):
    """The connections and settings a flow document asks for, filled in by its owner."""

    def __init__(self, *args: Any, flow: Flow, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        document = flow.document or {}
        self.connections = {
            alias: spec
            for alias, spec in (document.get("connections") or {}).items()
            if isinstance(spec, dict)
        }
        self.settings = {
            key: spec if isinstance(spec, dict) else {"value": spec}
            for key, spec in (document.get("settings") or {}).items()
        }
        for alias, spec in self.connections.items():
            service = spec.get("service", "")
            choices = Connection.objects.owned_by(user).filter(service=service)
            initial = spec.get("connection")
            if initial is None:
                # The only connection of the service (say, one just created) is the likely pick.
                only = list(choices.values_list("pk", flat=True)[:2])
                initial = only[0] if len(only) == 1 else None
            self.fields[f"connection__{alias}"] = forms.ModelChoiceField(
                queryset=choices,
                required=False,
                label=f"{service_label(service)} connection “{alias}”",
                empty_label=f"Choose {with_article(service_label(service))} connection",
                initial=initial,
            )
        for key, spec in self.settings.items():
            field = setting_field(spec)
            field.label = key
            self.fields[f"setting__{key}"] = field
        uses, self.missing_connections = connection_needs(document)
        self.connection_fields = [
            {
                "alias": alias,
                "service": spec.get("service", ""),
                "title": service_label(spec.get("service")),
                "field": self[f"connection__{alias}"],
                "steps": uses.get(alias, []),
            }
            for alias, spec in self.connections.items()
        ]
        self.setting_fields = [(key, self[f"setting__{key}"]) for key in self.settings]

    def apply(self, document: dict) -> dict:
        """The document with the chosen connections and settings written in."""
        document = json.loads(json.dumps(document))
        for alias in self.connections:
            connection = self.cleaned_data.get(f"connection__{alias}")
            document["connections"][alias]["connection"] = connection.pk if connection else None
        for key, spec in self.settings.items():
            value = self.cleaned_data.get(f"setting__{key}")
            if spec.get("secret") and not value:
                continue  # a blank secret keeps the stored one
            document["settings"][key] = {**spec, "value": value}
        return document


SERVICE_LABELS = {
    "github": "GitHub",
    "llm": "LLM",
    "slack": "Slack",
    "discord": "Discord",
    "telegram": "Telegram",
    "http": "HTTP",
}


def with_hint(help_text: str, hint: str) -> str:
    """The help text followed by the sentences of a widget's hint it does not already say."""
    text = (help_text or "").strip()
    for sentence in re.findall(r"[^.]+(?:\.|$)", hint):
        sentence = sentence.strip()
        if sentence and sentence.rstrip(".").lower() not in text.lower():
            text = f"{text} {sentence}".strip()
    return text


def service_label(service: str | None) -> str:
    return SERVICE_LABELS.get(service or "", (service or "").capitalize())


@dataclass
class NodeField:
    """One input of the builder's node form, generated from a block parameter."""

    param: Param
    widget: str  # "input", "number", "textarea", "code", "checkbox", "select", "json", "list"
    value: Any
    error: str = ""

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def label(self) -> str:
        return self.param.label or self.param.name.replace("_", " ").capitalize()

    @property
    def input_id(self) -> str:
        return f"param-{self.param.name}"

    @property
    def help(self) -> str:
        """The parameter's description and its widget's hint, said once (`code` in backticks)."""
        return with_hint(self.param.description, WIDGET_HINTS.get(self.widget, ""))


WIDGETS = {
    "string": "input",
    "text": "textarea",
    "code": "code",
    "integer": "number",
    "number": "number",
    "boolean": "checkbox",
    "json": "json",
    "choice": "select",
    "list": "list",
    "secret-ref": "input",
}


WIDGET_HINTS = {
    "list": "One per line.",
    "json": "JSON.",
    "code": "Defines `main(event, ctx)`. In the editor, press Esc then Tab to move on.",
}


def display_value(param: Param, value: Any) -> Any:
    """The value as its widget shows it: JSON pretty-printed, lists one item per line."""
    if value is None:
        value = param.default
    if param.type == "boolean":
        return bool(value)
    if value is None:
        return ""
    if param.type == "json":
        return value if isinstance(value, str) else json.dumps(value, indent=2)
    if param.type == "list":
        return "\n".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    return value


def node_fields(block: Block, config: dict, errors: dict[str, str]) -> list[NodeField]:
    return [
        NodeField(
            param=param,
            widget=WIDGETS.get(param.type, "input"),
            value=display_value(param, config.get(param.name)),
            error=errors.get(param.name, ""),
        )
        for param in block.params
    ]
