"""What a flow's steps do outside Flowbuilder: the comments, labels and messages a test run of
the draft posts for real, so that the builder's test panel can say so before it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.catalog import get_block

# Capabilities that change something in an outside service (reads and the flow's own store are
# left out). Kept here until capability declarations say it themselves.
ACTING = {
    "discord.post": "post to Discord",
    "github.comment.create": "comment on GitHub",
    "github.comment.update": "edit GitHub comments",
    "github.comment.upsert": "comment on GitHub",
    "github.issue.create": "open GitHub issues",
    "github.issue.reply": "reply on GitHub",
    "github.labels.add": "add GitHub labels",
    "github.labels.remove": "remove GitHub labels",
    "github.pr.update": "edit GitHub pull requests",
    "slack.post": "post to Slack",
    "telegram.send": "send Telegram messages",
}


@dataclass(frozen=True)
class Effect:
    step: str
    does: list[str]  # "post to Slack", ...
    granted: bool  # a code step that may do it, rather than a block that does it

    @property
    def text(self) -> str:
        """'posts to Slack', or for a code step 'may comment on GitHub and post to Slack'."""
        actions = " and ".join(self.does)
        if self.granted:
            return f"may {actions}"
        verb, _, rest = actions.partition(" ")
        verb = f"{verb[:-1]}ies" if verb.endswith("y") else f"{verb}s"
        return f"{verb} {rest}"


def real_effects(document: Any) -> list[Effect]:
    """The steps of `document` that act on outside services, in document order."""
    steps = document.get("steps") if isinstance(document, dict) else None
    effects = []
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        block = get_block(str(step.get("kind", "")))
        if block is None:
            continue
        granted = block.category == "code"
        if granted:
            names = step.get("grants") if isinstance(step.get("grants"), list) else []
        else:
            names = list(block.capabilities)
        acting = tuple(dict.fromkeys(str(n) for n in names if n in ACTING))
        if acting:
            does = list(dict.fromkeys(ACTING[n] for n in acting))
            effects.append(Effect(str(step.get("id", "")), does, granted))
    return effects
