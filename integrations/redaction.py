"""Keeping known secret values out of log lines, error messages and capability results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MASK = "[redacted]"
# Shorter values would mask ordinary words everywhere; no real credential is this short.
MIN_SECRET_CHARS = 4


def secret_values(secrets: Any) -> list[str]:
    """Every string inside a connection's secrets (values of nested dicts and lists too)."""
    found: list[str] = []
    if isinstance(secrets, dict):
        for value in secrets.values():
            found.extend(secret_values(value))
    elif isinstance(secrets, list | tuple | set):
        for value in secrets:
            found.extend(secret_values(value))
    elif isinstance(secrets, str) and len(secrets) >= MIN_SECRET_CHARS:
        found.append(secrets)
        # A header value such as "Bearer abc..." holds the token that may be logged alone.
        last = secrets.split()[-1] if secrets.split() else ""
        if len(last) >= 8 and last != secrets:
            found.append(last)
    return found


def _forms(secret: str) -> set[str]:
    # The same secret as it may appear percent-encoded inside a URL.
    return {secret, quote(secret, safe="")}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each known secret value in `text` with "[redacted]"."""
    if not text:
        return text
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(str(secret)) >= MIN_SECRET_CHARS:
            forms |= _forms(str(secret))
    # Longest first, so a secret that contains another is masked whole.
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_value(value: Any, secrets: Iterable[str]) -> Any:
    """`redact` applied to every string inside a JSON-like value (dict keys included)."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_value(k, secrets): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, secrets) for v in value]
    return value
