"""The WebAssembly sandbox that runs code steps: Python steps in our interpreter component, and
uploaded Wasm modules through a small JSON ABI (docs/sandbox.md, docs/wasm-abi.md)."""

from .artifacts import load_artifact, module_capabilities, store_artifact
from .limits import Limits
from .modules import run_wasm_step
from .python import check_python_syntax, run_python_step
from .results import SandboxError, StepResult

__all__ = [
    "Limits",
    "SandboxError",
    "StepResult",
    "check_python_syntax",
    "load_artifact",
    "module_capabilities",
    "run_python_step",
    "run_wasm_step",
    "store_artifact",
]
