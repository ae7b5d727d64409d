"""Exceptions the engine raises to its callers, and the one blocks raise to end a run early."""

from __future__ import annotations

from typing import Any


class FlowNotDeployed(Exception):
    """A trigger arrived for a flow that has no deployed version to run."""


class FlowPaused(Exception):
    """A trigger arrived for a paused flow."""


class SkipRun(Exception):
    """Raised by a block to end the run as `skipped` (not a failure) with `output` as its output."""

    def __init__(self, reason: str, output: Any = None):
        super().__init__(reason)
        self.reason = reason
        self.output = output
