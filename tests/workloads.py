"""A pull request of 60 changed files, the workload of the prompt-builder tests and of
bench/sandbox.py: ordinary patches, a patch too big for five parts, very long lines, non-ASCII
text, CRLF line ends, and the files a review skips (ignored, deleted, binary, renamed)."""

from __future__ import annotations

from typing import Any

PR_REPO = "octo/shop"
PR_NUMBER = 42


def _hunk(start: int, lines: list[str]) -> str:
    return f"@@ -{start},{len(lines) - 2} +{start},{len(lines)} @@ def total(cart):\n" + "\n".join(
        lines
    )


def _module_patch(n: int) -> str:
    first = [f"+    total += item.price * item.quantity  # line {i} of file {n}" for i in range(12)]
    second = [" context line", "-    return total", "+    return round(total, 2)", " end"]
    return _hunk(10, first) + "\n" + _hunk(80, second)


def pull_request_files() -> list[dict[str, Any]]:
    big = "\n".join(
        _hunk(
            1 + 400 * h,
            [f"+    value_{h}_{i} = compute({i}) * factor  # keeps the cart" for i in range(300)],
        )
        for h in range(3)
    )
    long_line = "+" + "x = [" + ", ".join(str(i) for i in range(200)) + "]"
    files: list[dict[str, Any]] = [
        {
            "filename": "package-lock.json",
            "status": "modified",
            "additions": 900,
            "deletions": 850,
            "changes": 1750,
            "patch": _hunk(1, ['+    "lodash": "4.17.21"']),
        },
        {
            "filename": "vendor/lib/util.go",
            "status": "added",
            "additions": 3,
            "deletions": 0,
            "changes": 3,
            "patch": _hunk(1, ["+package lib"]),
        },
        {
            "filename": "static/app.min.js",
            "status": "modified",
            "additions": 1,
            "deletions": 1,
            "changes": 2,
            "patch": _hunk(1, ["+var a=1"]),
        },
        {
            "filename": "docs/old.md",
            "status": "removed",
            "additions": 0,
            "deletions": 40,
            "changes": 40,
            "patch": _hunk(1, ["-old"]),
        },
        {
            "filename": "assets/logo.png",
            "status": "added",
            "additions": 0,
            "deletions": 0,
            "changes": 0,
        },
        {
            "filename": "shop/new_name.py",
            "status": "renamed",
            "previous_filename": "shop/old_name.py",
            "additions": 0,
            "deletions": 0,
            "changes": 0,
        },
        {
            "filename": "shop/cart/big.py",
            "status": "modified",
            "additions": 900,
            "deletions": 0,
            "changes": 900,
            "patch": big,
        },
        {
            "filename": "shop/cart/long.py",
            "status": "modified",
            "additions": 2,
            "deletions": 1,
            "changes": 3,
            "patch": _hunk(5, [long_line, "-x = []", "+y = 1"]),
        },
        {
            "filename": "shop/i18n/messages.py",
            "status": "renamed",
            "previous_filename": "shop/msgs.py",
            "additions": 3,
            "deletions": 1,
            "changes": 4,
            "patch": _hunk(
                1,
                [
                    '+GREETING = "Grüß Gott, ça va? 👋"',
                    "-GREETING = 'hi'\r",
                    " # ünïcode",
                    "+DONE = True",
                    "\\ No newline at end of file",
                ],
            ),
        },
    ]
    files += [
        {
            "filename": f"shop/cart/module_{n}.py",
            "status": "modified",
            "additions": 13,
            "deletions": 1,
            "changes": 14,
            "patch": _module_patch(n),
        }
        for n in range(60 - len(files))
    ]
    return files


def pull_request_event() -> dict[str, Any]:
    """The trigger's event: a GitHub pull_request delivery, as the engine records it."""
    return {
        "name": "pull_request",
        "payload": {
            "action": "opened",
            "number": PR_NUMBER,
            "repository": {"full_name": PR_REPO, "private": False},
            "pull_request": {
                "number": PR_NUMBER,
                "title": "Compute cart totals with quantities",
                "body": "This change makes the cart total account for quantities.",
                "user": {"login": "ada"},
                "head": {"sha": "abc123"},
            },
        },
    }
