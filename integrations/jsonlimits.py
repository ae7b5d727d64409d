"""JSON from outside (webhook bodies, the builder's posts) with a cap on nesting depth.

`json.loads` raises RecursionError on a few thousand nested brackets, and a value a little less
deep still breaks whatever walks it later (saving, rendering, the sandbox), so such input is
refused with a ValueError in words instead.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 100


class TooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"it is nested more than {MAX_DEPTH} levels deep")


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


def loads(text: str | bytes) -> Any:
    """`json.loads`, raising TooDeep (a ValueError) for values nested too deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep() from None
    if depth_exceeds(value):
        raise TooDeep()
    return value
