"""The test run's settings: the app's own, with keys made for tests (tests/keys.py).

They are put in the environment, so that the servers and workers the tests start as subprocesses
get them too. Sign-up is open for the browser journeys.
"""

import os

from tests import keys

keys.provide()
os.environ.setdefault("FLOWS_SIGNUP", "open")

from flowbuilder.settings import *  # noqa: E402,F403
