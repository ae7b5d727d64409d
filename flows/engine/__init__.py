"""The execution engine: start runs from triggers, execute them step by step, stream their logs.

Public API: `start_run`, `rerun`, `pause_flow`, `resume_flow`, `FlowNotDeployed`, `FlowPaused`.
"""

from flows.engine.errors import FlowNotDeployed, FlowPaused, SkipRun
from flows.engine.runs import pause_flow, rerun, resume_flow, start_run

__all__ = [
    "FlowNotDeployed",
    "FlowPaused",
    "SkipRun",
    "pause_flow",
    "rerun",
    "resume_flow",
    "start_run",
]
