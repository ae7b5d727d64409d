"""JSON from outside (webhook bodies, the builder's posts) with a cap on nesting depth, and
without values that the database cannot store.

`json.loads` raises RecursionError on a few thousand nested brackets, and a value a little less
deep still breaks whatever walks it later (saving, rendering, the sandbox), so such input is
refused with a ValueError in words instead. So are text with a NUL character (`\u0000`: PostgreSQL
refuses it in jsonb and text), lone surrogates (`\ud800`: not encodable as UTF-8) and integers
longer than Python converts (4,300 digits by default).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 100


class Refused(ValueError):
    """Valid JSON that this server does not accept; the message says why, in words."""

    def __init__(self, reason: str = f"it is nested more than {MAX_DEPTH} levels deep") -> None:
        super().__init__(reason)


# The first refusal was depth; callers that catch it by that name catch every refusal.
TooDeep = Refused


def unstorable_text(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return "it contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it contains a lone surrogate (such as \\ud800), which is not valid Unicode"
    return None


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects inside `value` nest more than `limit` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def check_storable(value: Any) -> None:
    """Raise Refused when a string (or key) inside `value` cannot be stored."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            reason = unstorable_text(node)
            if reason:
                raise Refused(reason)
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def loads(text: str | bytes) -> Any:
    """`json.loads`, raising Refused (a ValueError) for values nested too deep, integers too long
    to convert, and text that cannot be stored."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep() from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        if "digits" in str(exc):  # int() refuses numbers past sys.get_int_max_str_digits()
            raise Refused("it holds a number with too many digits") from None
        raise
    if depth_exceeds(value):
        raise TooDeep()
    check_storable(value)
    return value
