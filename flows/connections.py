"""What the flows layer needs to know of its owners' connections (credentials), asked of the app
that keeps them. The integrations app registers itself at start-up (IntegrationsConfig.ready), so
the compiler, the document import and the engine never import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class BoundConnection:
    """A connection as a run uses it: secrets decrypted on the host, never given to guests."""

    service: str
    config: dict[str, Any]
    secrets: dict[str, Any] | None
    problem: str = ""  # why it cannot be used (deleted, unreadable secrets)


class Source(Protocol):
    def label(self, service: str) -> str:
        """The service's name as people write it: "GitHub", "LLM"."""

    def services(self, owner, ids: Iterable[int]) -> dict[int, str]:
        """The service of each of these connections that belongs to `owner` (others absent)."""

    def of_service(self, owner, service: str) -> list[int]:
        """The ids of `owner`'s connections of `service`."""

    def bound(self, owner_id: int, ids: Iterable[int]) -> dict[int, BoundConnection]:
        """These connections of the owner, with their secrets, ready for a run."""


_registry: dict[str, Source] = {}


def register(source: Source) -> None:
    _registry["source"] = source


def source() -> Source:
    try:
        return _registry["source"]
    except KeyError:
        raise RuntimeError("no app keeps connections: is 'integrations' installed?") from None


def with_article(word: str) -> str:
    """'a GitHub', 'an LLM', 'an HTTP': the article a reader says before the word."""
    if not word:
        return word
    first = word.split()[0]
    # An acronym is read letter by letter: "an LLM", "an HTTP".
    if first.isupper() and len(first) > 1:
        vowel_sound = first[0] in "AEFHILMNORSX"
    else:
        vowel_sound = word[0].lower() in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {word}"


def a_connection(service: str) -> str:
    """ "an LLM connection", "a GitHub connection" (services no app knows keep their key)."""
    label = _registry["source"].label(service) if "source" in _registry else service
    return f"{with_article(label)} connection"
