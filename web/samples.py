"""Sample events for test runs: real GitHub webhook payloads shipped with the app, events of
earlier runs, and a starting event per trigger kind.

The GitHub payloads come from `Codertocat/Hello-World`; a flow that only runs for its own
repository would skip them, so they are rewritten to the repository the flow is set up for (and
the starting event is one of the events the trigger listens to)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from flows.document import setting_spec
from flows.models import Flow, Run
from flows.templating import TemplateError, render_value
from integrations.triggers import telegram_event

GITHUB_DIR = Path(__file__).resolve().parent / "samples" / "github"
SAVED_EVENTS = 10
SAMPLE_REPO = "Codertocat/Hello-World"
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@cache
def github_sample_names() -> list[str]:
    """e.g. ["issue_comment.created", "pull_request.opened", ...]."""
    return sorted(p.stem for p in GITHUB_DIR.glob("*.json"))


def setting_values(document: dict) -> dict[str, Any]:
    return {
        name: setting_spec(raw).get("value")
        for name, raw in ((document or {}).get("settings") or {}).items()
    }


def flow_repository(document: dict) -> str:
    """The repository (owner/name) the flow is set up for: its GitHub trigger's repository
    filter, or else the first setting whose value looks like one ("" when there is none)."""
    settings = setting_values(document)
    config = ((document or {}).get("trigger") or {}).get("config") or {}
    try:
        wanted = render_value(config.get("repository") or "", {"settings": settings})
    except TemplateError:
        wanted = ""
    candidates = [wanted, *settings.values()]
    return next(
        (c.strip() for c in candidates if isinstance(c, str) and REPO_NAME.match(c.strip())), ""
    )


def in_repository(value: Any, repo: str) -> Any:
    """The payload with the sample repository replaced by `repo` in every name and URL."""
    if isinstance(value, str):
        return value.replace(SAMPLE_REPO, repo)
    if isinstance(value, list):
        return [in_repository(item, repo) for item in value]
    if isinstance(value, dict):
        return {key: in_repository(item, repo) for key, item in value.items()}
    return value


def github_event(name: str, repo: str = "") -> dict:
    """The event a GitHub webhook delivery of this sample gives a flow, from `repo` if given."""
    if name not in github_sample_names():
        raise KeyError(name)
    payload = json.loads((GITHUB_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if repo and repo != SAMPLE_REPO:
        payload = in_repository(payload, repo)
        owner, _, short = repo.partition("/")
        repository = payload.get("repository")
        if isinstance(repository, dict):
            repository["name"] = short
            if isinstance(repository.get("owner"), dict):
                repository["owner"]["login"] = owner
    return {
        "name": name.split(".")[0],
        "action": payload.get("action", ""),
        "payload": payload,
        "delivery": f"sample-{name}",
    }


def saved_runs(flow: Flow) -> list[Run]:
    """The latest runs of the flow whose events are worth replaying."""
    return list(
        Run.objects.filter(flow=flow)
        .exclude(event={})
        .only("id", "trigger", "created_at")[:SAVED_EVENTS]
    )


def default_github_sample(trigger: dict) -> str:
    """The first sample among the events the trigger listens to (pull_request.opened if none)."""
    events = (trigger.get("config") or {}).get("events") or []
    names = github_sample_names()
    for event in events if isinstance(events, list) else [events]:
        event = str(event)
        match = next((n for n in names if n == event or n.split(".")[0] == event), None)
        if match:
            return match
    return "pull_request.opened"


def default_event(trigger: dict, document: dict | None = None) -> dict:
    """A starting event shaped like the ones the flow's trigger produces; given the flow's
    document, a GitHub event comes from the repository the flow is set up for."""
    kind = trigger.get("kind", "")
    if kind == "trigger.github":
        return github_event(default_github_sample(trigger), flow_repository(document or {}))
    if kind == "trigger.webhook":
        return {
            "method": "POST",
            "path": "",
            "query": {},
            "headers": {"content-type": "application/json"},
            "body": {"hello": "world"},
        }
    if kind == "trigger.telegram":
        message = {
            "message_id": 7,
            "chat": {"id": 123456789, "type": "private"},
            "from": {"id": 123456789, "first_name": "Ada", "username": "ada"},
            "date": 1736150400,
            "text": "Hello bot",
        }
        return telegram_event({"update_id": 1000, "message": message})
    if kind == "trigger.schedule":
        return {"scheduled_at": "2025-01-06T09:00:00+00:00"}
    sample = (trigger.get("config") or {}).get("sample_event")
    return sample if isinstance(sample, dict) else {}


def sample_event(flow: Flow, choice: str) -> dict | None:
    """The event for a choice of the sample menu: "github:<name>", "run:<id>" or "default"."""
    source, _, name = choice.partition(":")
    document = flow.document or {}
    if source == "github":
        try:
            return github_event(name, flow_repository(document))
        except KeyError:
            return None
    if source == "run" and name.isdigit():
        run = Run.objects.filter(flow=flow, pk=int(name)).first()
        return run.event if run else None
    if source == "default":
        return default_event(document.get("trigger") or {}, document)
    return None
