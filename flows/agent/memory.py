"""An agent's long-term memory: the conversation kept under a key in the flow's key-value store.

Each run adds its user message and final answer. When the kept conversation outgrows its token
budget, the oldest turns are summarised by the model into one summary that leads the rest; the
last exchange is always kept as it was said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

KEY_PREFIX = "agent-memory:"
CHARS_PER_TOKEN = 4  # the estimate integrations.services.llm uses for trimming as well


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class Memory:
    key: str
    summary: str = ""
    turns: list[dict[str, str]] = field(default_factory=list)

    @property
    def store_key(self) -> str:
        return f"{KEY_PREFIX}{self.key}"

    @classmethod
    def load(cls, key: str, get) -> Memory:
        stored = get({"key": f"{KEY_PREFIX}{key}"})
        if not isinstance(stored, dict):
            return cls(key)
        turns = [
            {"role": t["role"], "content": t["content"]}
            for t in stored.get("turns") or []
            if isinstance(t, dict)
            and t.get("role") in ("user", "assistant")
            and isinstance(t.get("content"), str)
        ]
        summary = stored.get("summary") if isinstance(stored.get("summary"), str) else ""
        return cls(key, summary, turns)

    def messages(self) -> list[dict[str, str]]:
        """What the model is shown before this run's message."""
        lead = []
        if self.summary:
            lead.append(
                {
                    "role": "system",
                    "content": f"Summary of the earlier conversation:\n{self.summary}",
                }
            )
        return lead + self.turns

    def tokens(self) -> int:
        return estimate_tokens(self.summary) + sum(
            estimate_tokens(t["content"]) for t in self.turns
        )

    def add(self, user: str, answer: str) -> None:
        self.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]

    def oldest_to_summarise(self, budget: int) -> list[dict[str, str]]:
        """The oldest turns to fold into the summary so the rest fits `budget` (the last exchange
        stays whatever its size); [] when it fits already."""
        if self.tokens() <= budget:
            return []
        taken = 0
        size = self.tokens()
        while taken < len(self.turns) - 2 and size > budget // 2:
            size -= estimate_tokens(self.turns[taken]["content"])
            taken += 1
        return self.turns[:taken]

    def fold(self, count: int, summary: str) -> None:
        self.turns = self.turns[count:]
        self.summary = summary

    def stored(self) -> dict[str, Any]:
        return {"summary": self.summary, "turns": self.turns}


def summary_prompt(previous: str, turns: list[dict[str, str]], budget: int) -> str:
    said = "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)
    earlier = f"Summary so far:\n{previous}\n\n" if previous else ""
    return (
        f"{earlier}Conversation to add:\n{said}\n\nWrite one summary of everything above in at "
        f"most {max(50, budget * CHARS_PER_TOKEN // 4)} characters: the facts, decisions and "
        "open questions someone continuing the conversation needs. Only the summary."
    )
