"""The generic Python-step interpreter: runs `main(event, ctx)` of a source given at run time.

componentize-py snapshots the interpreter after importing this module, and keeps only the modules
imported by then: importing STEP_MODULES here is what makes them importable by steps. The list is
documented in docs/sandbox.md; any other import raises ModuleNotFoundError with a clear message.
"""

import builtins
import importlib
import importlib.machinery
import json
import linecache
import random
import sys
import time
import traceback

import wit_world
from componentize_py_types import Err

import flowbuilder

STEP_MODULES = (
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "collections",
    "collections.abc",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "math",
    "operator",
    "pprint",
    "random",
    "re",
    "secrets",
    "shlex",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "time",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "zlib",
    # Loaded by datetime.strptime and time.strptime when first called: it must be here already.
    "_strptime",
)
for _name in STEP_MODULES:
    importlib.import_module(_name)

# Parent packages are importable too (`from urllib import parse`), and so is our own module.
ALLOWED = frozenset(STEP_MODULES) | {"flowbuilder", "urllib"}
MISSING = "No module named '{}': Python steps can import only the modules listed in docs/sandbox.md"
RUNNER_FILES = frozenset({__file__, flowbuilder.__file__})


class Unavailable:
    """The last meta path finder: whatever the snapshot lacks gets our explanation."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        raise ModuleNotFoundError(MISSING.format(name), name=name)


sys.meta_path.append(Unavailable)
real_import = builtins.__import__


def step_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name not in ALLOWED:
        raise ModuleNotFoundError(MISSING.format(name), name=name)
    module = real_import(name, globals, locals, fromlist, level)
    if level == 0 and fromlist and hasattr(module, "__path__"):
        # `from urllib import request`: a submodule we do not provide, not a missing name.
        for item in fromlist:
            if item != "*" and not hasattr(module, item):
                missing = f"{name}.{item}"
                raise ModuleNotFoundError(MISSING.format(missing), name=missing)
    return module


def refuse_loading(*args, **kwargs):
    raise ModuleNotFoundError("Python steps load modules only with import")


# The legacy loader entry points load any built-in module (sys, posix, _socket) around the
# import allowlist; the import system itself no longer calls them, so they refuse.
for _importer in (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter):
    _importer.load_module = staticmethod(refuse_loading)

# Steps see the builtins without the importer that loaded them (`__loader__`, `__spec__`): that
# path led to sys and os around the allowlist.
STEP_BUILTINS = {
    name: value
    for name, value in dict(builtins.__dict__, __import__=step_import).items()
    if name not in ("__loader__", "__spec__")
}


class TimeLimit(BaseException):
    """time.sleep reached the step's deadline (sleeping runs no Wasm, so epochs cannot stop it)."""


real_sleep = time.sleep
deadline = [float("inf")]


def sleep(seconds):
    remaining = deadline[0] - time.monotonic()
    if seconds >= remaining:
        real_sleep(max(remaining, 0))
        raise TimeLimit
    real_sleep(seconds)


time.sleep = sleep


class Failure(Exception):
    def __init__(self, kind, message="", retryable=False):
        super().__init__(message)
        self.failure = wit_world.Failure(kind=kind, message=message, retryable=retryable)


def strip_runner_frames(te, seen=None):
    """Keeps the frames of the user's code (and the stdlib it called), never ours."""
    seen = set() if seen is None else seen
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [frame for frame in te.stack if frame.filename not in RUNNER_FILES]
    )
    for linked in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if linked is not None:
            strip_runner_frames(linked, seen)


def format_exception(exc):
    te = traceback.TracebackException.from_exception(exc)
    strip_runner_frames(te)
    return "".join(te.format()).rstrip("\n")


def takes_only_event(main):
    code = getattr(main, "__code__", None)
    # CO_VARARGS: main(*args) gets both arguments.
    return code is not None and code.co_argcount == 1 and not code.co_flags & 0x04


def execute(step, source, event, context):
    filename = f"step '{step}'"
    # Tracebacks show the offending source lines, like for a file on disk.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise Failure("syntax", format_exception(exc)) from None
    except ValueError as exc:
        raise Failure("syntax", f"{filename}: {exc}") from None
    data = json.loads(context)
    ctx = flowbuilder.Context(
        step, data.get("settings") or {}, data.get("steps") or {}, data.get("run") or {}
    )
    namespace = {"__name__": "__step__", "__builtins__": STEP_BUILTINS}
    try:
        exec(code, namespace)
        main = namespace.get("main")
        if not callable(main):
            raise Failure("invalid", f"step '{step}' does not define main(event, ctx)")
        value = json.loads(event)
        result = main(value) if takes_only_event(main) else main(value, ctx)
    except Failure:
        raise
    except MemoryError:
        raise Failure("memory") from None
    except TimeLimit:
        raise Failure("timeout") from None
    except BaseException as exc:
        if isinstance(exc, flowbuilder.CapabilityError):
            raise Failure("capability", format_exception(exc), exc.retryable is True) from None
        raise Failure("exception", format_exception(exc)) from None
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False)
    except MemoryError:
        raise Failure("memory") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise Failure(
            "output", f"step '{step}' returned a value that is not JSON-serialisable: {exc}"
        ) from None


class WitWorld(wit_world.WitWorld):
    def run(self, step, source, event, context, timeout_ms):
        deadline[0] = time.monotonic() + timeout_ms / 1000
        # The snapshot froze one PRNG state: every run starts from fresh entropy instead.
        random.seed()
        stdout, stderr = flowbuilder.capture_output()
        try:
            return execute(step, source, event, context)
        except Failure as failure:
            raise Err(failure.failure) from None
        finally:
            stdout.flush()
            stderr.flush()

    def check(self, step, source):
        try:
            code = compile(source, f"step '{step}'", "exec")
        except SyntaxError as exc:
            where = f" at line {exc.lineno}" if exc.lineno else ""
            return f"step '{step}': {type(exc).__name__}{where}: {exc.msg}"
        except ValueError as exc:
            return f"step '{step}': {exc}"
        if "main" not in code.co_names:
            return f"step '{step}' does not define main(event, ctx)"
        return None
