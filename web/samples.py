"""Sample events for test runs: real GitHub webhook payloads shipped with the app, events of
earlier runs, and a starting event per trigger kind."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from flows.models import Flow, Run
from integrations.triggers import telegram_event

GITHUB_DIR = Path(__file__).resolve().parent / "samples" / "github"
SAVED_EVENTS = 10


@cache
def github_sample_names() -> list[str]:
    """e.g. ["issue_comment.created", "pull_request.opened", ...]."""
    return sorted(p.stem for p in GITHUB_DIR.glob("*.json"))


def github_event(name: str) -> dict:
    """The event a GitHub webhook delivery of this sample gives a flow."""
    if name not in github_sample_names():
        raise KeyError(name)
    payload = json.loads((GITHUB_DIR / f"{name}.json").read_text(encoding="utf-8"))
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


def default_event(trigger: dict) -> dict:
    """A starting event shaped like the ones the flow's trigger produces."""
    kind = trigger.get("kind", "")
    if kind == "trigger.github":
        return github_event("pull_request.opened")
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
    if source == "github":
        try:
            return github_event(name)
        except KeyError:
            return None
    if source == "run" and name.isdigit():
        run = Run.objects.filter(flow=flow, pk=int(name)).first()
        return run.event if run else None
    if source == "default":
        return default_event((flow.document or {}).get("trigger") or {})
    return None
