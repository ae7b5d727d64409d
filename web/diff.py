"""A side-by-side diff of two flow documents, line by line on their pretty-printed JSON."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffRow:
    kind: str  # "equal", "insert", "delete", "replace"
    old_number: int | None
    old_line: str
    new_number: int | None
    new_line: str


def pretty(document: dict) -> list[str]:
    return json.dumps(document, indent=2, sort_keys=True).splitlines()


def document_diff(old: dict, new: dict, context: int = 3) -> list[DiffRow | None]:
    """Rows of changed lines with `context` equal lines around them; None marks a gap."""
    a, b = pretty(old), pretty(new)
    rows: list[DiffRow | None] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        if rows:
            rows.append(None)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(
                    DiffRow("equal", i + 1, a[i], j + 1, b[j])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            old_lines, new_lines = list(range(i1, i2)), list(range(j1, j2))
            for k in range(max(len(old_lines), len(new_lines))):
                i = old_lines[k] if k < len(old_lines) else None
                j = new_lines[k] if k < len(new_lines) else None
                rows.append(
                    DiffRow(
                        tag,
                        None if i is None else i + 1,
                        "" if i is None else a[i],
                        None if j is None else j + 1,
                        "" if j is None else b[j],
                    )
                )
    return rows
