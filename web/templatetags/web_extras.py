"""Filters the pages use to show durations, JSON, secrets, token counts, statuses and help text."""

import builtins
import json
import re
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from flows.engine.logs import log_line_html, trace_entry_html
from flows.models import Run, StepRun

from ..forms import with_article

register = template.Library()

# JSON of more lines or characters than this is folded in <details> on the run page.
FOLD_LINES = 30
FOLD_CHARS = 3000


@register.filter
def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{int(ms // 60_000)} min {int(ms % 60_000 // 1000)} s"


@register.filter
def since(moment: datetime | None, start: datetime | None) -> str:
    """When something began after `start`: "+0 ms", "+1.2 s" (steps that overlap show it)."""
    if moment is None or start is None:
        return ""
    return "+" + duration(max(0.0, (moment - start).total_seconds() * 1000))


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago, in words: 'just now', '5 minutes ago', '2 days ago'."""
    if moment is None:
        return "—"
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def folds(text: str) -> bool:
    """Whether pretty-printed JSON is long enough to fold."""
    return text.count("\n") >= FOLD_LINES or len(text) >= FOLD_CHARS


@register.filter
def secret_hint(last4: str) -> str:
    return f"••••{last4}"


@register.filter
def tokens_total(tokens: dict | None) -> int | None:
    if not tokens:
        return None
    if "total_tokens" in tokens:
        return tokens["total_tokens"]
    return sum(v for v in tokens.values() if isinstance(v, int)) or None


@register.filter
def fuel(value: int | None) -> str:
    """Fuel in millions of instructions, as a person reads it."""
    if not value:
        return "—"
    if value < 1_000_000:
        return f"{value:,}"
    return f"{value / 1_000_000:,.1f} M"


@register.filter
def log_line(line) -> str:
    """A stored log line, in the same markup as the live ones (flows.engine.logs)."""
    return log_line_html(line.run_id, line.seq, line.step_id, line.level, line.message, line.time)


@register.simple_tag
def trace_entry(step, entry: dict, seq: int) -> str:
    """A stored entry of an agent step's trace, in the same markup as the live ones."""
    return mark_safe(trace_entry_html(step, entry, seq))


register.filter("with_article", with_article)


INLINE_CODE = re.compile(r"`([^`\n]+)`")


@register.filter
def inline_code(text: str) -> str:
    """Help text as people write it: `code` in backticks becomes <code>; the rest is escaped."""
    return mark_safe(INLINE_CODE.sub(r"<code>\1</code>", str(escape(text or ""))))


@register.filter
def status_label(status: str) -> str:
    """A run's or step's status as words, also for statuses this page does not know yet."""
    return STATUS_LABELS.get(status or "", str(status or "").replace("_", " ").capitalize())


STATUS_LABELS = {**dict(Run.Status.choices), **dict(StepRun.Status.choices)}


@register.filter
def size(value: Any) -> str:
    """How big a JSON value is, as a person reads it: '9 bytes', '2.3 KB', '1.4 MB'."""
    count = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    if count < 1000:
        return f"{count} byte{'s' if count != 1 else ''}"
    if count < 1_000_000:
        return f"{count / 1000:.1f} KB"
    return f"{count / 1_000_000:.1f} MB"


@register.filter
def linecount(text: str) -> int:
    return str(text).count("\n") + 1


TRACEBACK = "Traceback (most recent call last):"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z“\"'`])")
EXCEPTION_CLASS = re.compile(r"^(?:[A-Za-z_]\w*\.)*(?P<name>[A-Za-z_]\w*): ")
HEADLINE_CHARS = 300


@register.filter
def error_headline(error: str) -> str:
    """An error in one sentence: what went wrong, without the traceback that led there.

    "step 'plan': Traceback ... __step__.ReviewFailure: Could not read ...: GitHub says ... ."
    becomes "step 'plan': Could not read ...: GitHub says ... ."; a built-in exception keeps its
    name ("KeyError: 'repo'"), which is the only thing saying what it was.
    """
    text = str(error or "").strip()
    prefix, marker, rest = text.partition(TRACEBACK)
    if marker:
        lines = rest.splitlines()
        last_frame = max(
            (i for i, line in enumerate(lines) if line.startswith("  File ")), default=-1
        )
        tail = lines[last_frame + 1 :]
        while tail and tail[0].startswith("    "):  # the frame's source line and its ^^^ marks
            tail.pop(0)
        message = "\n".join(tail).strip()
        named = EXCEPTION_CLASS.match(message)
        if named and not isinstance(getattr(builtins, named["name"], None), type):
            message = message[named.end() :]
        text = f"{prefix.strip()} {message}".strip()
    headline = SENTENCE_END.split(text.strip().split("\n", 1)[0], maxsplit=1)[0]
    if len(headline) > HEADLINE_CHARS:
        headline = headline[: HEADLINE_CHARS - 1].rstrip() + "…"
    return headline
