"""The GitHub and Telegram trigger blocks, and how an incoming event is matched against them.

The endpoints live in `integrations.views`; this module holds what they decide with: the flow's
deployed trigger, and why an event does or does not start a run.
"""

from __future__ import annotations

from typing import Any

from flows.catalog import Block, Param, register_block
from flows.templating import TemplateError, render_value
from integrations.capabilities import split_items

GITHUB_TRIGGER = "trigger.github"
TELEGRAM_TRIGGER = "trigger.telegram"


class NotTriggerable(Exception):
    """The flow cannot take this kind of event now (not deployed, other trigger, bad config)."""


def deployed_trigger(flow, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployed version's trigger config and settings; NotTriggerable when there are none."""
    version = flow.current_version
    if version is None:
        raise NotTriggerable("This flow is not deployed yet: deploy it to start runs from events.")
    plan = version.plan or {}
    trigger = plan.get("trigger") or {}
    if trigger.get("kind") != kind:
        raise NotTriggerable(
            f"This flow is started by {trigger.get('kind') or 'no trigger'}, not by {kind}."
        )
    return trigger.get("config") or {}, dict(plan.get("settings") or {})


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return split_items(value)
    return [str(v).strip() for v in value or [] if str(v).strip()]


def github_mismatch(config: dict, settings: dict, event: str, payload: dict) -> str:
    """Why this GitHub event does not start a run ("" when it does)."""
    action = payload.get("action") or ""
    name = f"{event}.{action}" if action else event
    events = _as_list(config.get("events"))
    if events and not any(e == event or e == name for e in events):
        return f"event {name} is not one of this flow's events ({', '.join(events)})"
    wanted = config.get("repository") or ""
    try:
        context = {"settings": settings, "event": {}, "steps": {}, "run": {}}
        wanted = str(render_value(wanted, context) or "")
    except TemplateError as exc:
        raise NotTriggerable(f"The trigger's repository cannot be read: {exc}.") from None
    wanted = wanted.strip()
    if wanted:
        repo = (payload.get("repository") or {}).get("full_name") or ""
        if repo.lower() != wanted.lower():
            return f"repository {repo or '(none)'} is not {wanted}"
    return ""


def telegram_event(update: dict) -> dict[str, Any]:
    """A Telegram update as a run's event: its kind, the chat, the text, the sender, the whole."""
    kind = next((k for k in update if k != "update_id"), "")
    body = update.get(kind) if isinstance(update.get(kind), dict) else {}
    message = body.get("message") if kind == "callback_query" else body
    message = message if isinstance(message, dict) else {}
    return {
        "name": kind,
        "update_id": update.get("update_id"),
        "chat_id": (message.get("chat") or {}).get("id"),
        "text": body.get("data") if kind == "callback_query" else message.get("text", ""),
        "from": body.get("from") or {},
        "payload": update,
    }


def telegram_mismatch(config: dict, event: dict) -> str:
    """Why this Telegram update does not start a run ("" when it does)."""
    updates = _as_list(config.get("updates")) or ["message"]
    if event["name"] not in updates:
        return f"update {event['name'] or '(empty)'} is not one of {', '.join(updates)}"
    chats = _as_list(config.get("chats"))
    if chats and str(event["chat_id"]) not in chats:
        return f"chat {event['chat_id']} is not one of this flow's chats"
    return ""


register_block(
    Block(
        kind=GITHUB_TRIGGER,
        category="trigger",
        title="GitHub event",
        description=(
            "Runs the flow when GitHub delivers a webhook event to /hooks/github/<token>/, signed "
            "with the flow's webhook secret. Filters by event and action, and by repository."
        ),
        params=(
            Param(
                "events",
                "list",
                label="Events",
                default=["pull_request.opened", "pull_request.synchronize"],
                description=(
                    "event.action pairs such as pull_request.opened or issue_comment.created; an "
                    "event alone (pull_request) means any action; empty means every event"
                ),
            ),
            Param(
                "repository",
                "string",
                label="Repository",
                templated=True,
                description="owner/name, e.g. {{ settings.github_repo }}; empty means any",
            ),
        ),
        outputs="event: {name, action, payload, delivery}",
    )
)

register_block(
    Block(
        kind=TELEGRAM_TRIGGER,
        category="trigger",
        title="Telegram message",
        description=(
            "Runs the flow when the bot receives a message: Telegram delivers it to "
            "/hooks/telegram/<token>/ with the flow's webhook secret in its secret-token header."
        ),
        params=(
            Param(
                "updates",
                "list",
                label="Updates",
                default=["message"],
                description="kinds of update: message, edited_message, channel_post, "
                "callback_query",
            ),
            Param(
                "chats",
                "list",
                label="Chats",
                description="only these chat ids; empty means any chat",
            ),
        ),
        outputs="event: {name, update_id, chat_id, text, from, payload}",
    )
)
