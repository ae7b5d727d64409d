"""The tool picker of an agent node's form: what the agent may call, chosen by ticking.

Capabilities come grouped by service, those of services the flow has connections for first;
ticking one of another service adds that service's connection picker to the form. The owner's
other deployed flows, the notes and the Python code tools (edited as JSON) follow.
"""

from __future__ import annotations

import json
from typing import Any

from flows import capabilities, catalog
from flows.agent.tools import is_tool_capability, spec_kind
from flows.models import Flow

from ..forms import service_label


def agent_tool_choices(user, flow: Flow, step: dict, aliases: dict[str, dict]) -> dict[str, Any]:
    config = step.get("config") if isinstance(step.get("config"), dict) else {}
    chosen = [t for t in config.get("tools") or [] if isinstance(t, dict)]
    by_capability = {t["capability"]: t for t in chosen if spec_kind(t) == "capability"}
    connected = {spec.get("service") for spec in aliases.values() if spec.get("connection")}
    groups: dict[str | None, list[dict]] = {}
    for name in sorted(capabilities.REGISTRY):
        if not is_tool_capability(name):
            continue
        cap = capabilities.get(name)
        spec = by_capability.get(name, {"capability": name})
        groups.setdefault(cap.service, []).append(
            {
                "name": name,
                "title": catalog.get_block(name).title,
                "description": cap.description,
                "writes": cap.writes,
                "checked": name in by_capability,
                "ask_first": bool(spec.get("ask_first")),
                "spec": json.dumps(spec),
            }
        )
    ordered = sorted(
        groups.items(),
        key=lambda g: (g[0] is not None and g[0] not in connected, service_label(g[0]) or ""),
    )
    flow_ids = {t["flow"] for t in chosen if spec_kind(t) == "flow"}
    others = (
        Flow.objects.owned_by(user)
        .exclude(pk=flow.pk)
        .filter(current_version__isnull=False)
        .order_by("name")
    )
    return {
        "capability_groups": [
            {
                "label": service_label(service) or "This flow's key-value store",
                "connected": service is None or service in connected,
                "tools": tools,
            }
            for service, tools in ordered
        ],
        "flows": [
            {
                "id": other.pk,
                "name": other.name,
                "description": other.description,
                "checked": other.pk in flow_ids,
            }
            for other in others
        ],
        "notes": any(spec_kind(t) == "notes" for t in chosen),
        "code_tools": json.dumps([t for t in chosen if spec_kind(t) == "code"], indent=2)
        if any(spec_kind(t) == "code" for t in chosen)
        else "",
    }
