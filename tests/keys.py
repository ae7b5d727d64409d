"""Keys for test and bench processes only (never a deployment's): the app refuses to start outside
the embedded mode without its own SECRET_KEY and FLOWS_ENCRYPTION_KEY."""

import os

TEST_KEYS = {
    "SECRET_KEY": "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "FLOWS_ENCRYPTION_KEY": "dGVzdHMtb25seS1mZXJuZXQta2V5LTAxMjM0NTY3ODk=",
}


def provide() -> None:
    """Put the test keys in this process's environment (inherited by its subprocesses), unless
    the caller set its own (`.ci/run` generates them)."""
    for name, value in TEST_KEYS.items():
        os.environ.setdefault(name, value)
