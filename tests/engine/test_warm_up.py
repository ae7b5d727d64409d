"""A process that executes runs gets ready before it takes work: its first run does not pay for
loading the Python step runner (bench/peers.py measures the first answer after a start)."""

from __future__ import annotations

import sys

import pytest

from flows.engine import embedded
from flows.sandbox.engine import runtime
from flows.tasks import warm_up_pool_process

RUNNER = "python-runner"


@pytest.fixture
def cold_runtime():
    rt = runtime()
    kept = rt.cache.pop(RUNNER, None)
    yield rt
    if kept is not None:
        rt.cache[RUNNER] = kept


@pytest.fixture
def as_uvicorn(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/srv/.venv/bin/uvicorn", "flowbuilder.asgi:application"])


def test_an_embedded_server_loads_the_runner_before_it_serves(settings, cold_runtime, as_uvicorn):
    settings.FLOWS_EXECUTOR = "embedded"
    embedded.maybe_warm_up()
    assert RUNNER in cold_runtime.cache


@pytest.mark.parametrize("server_runs, loaded", [(2, True), (0, False)])
def test_a_distributed_server_loads_the_runner_only_if_it_executes_waited_for_runs(
    settings, cold_runtime, as_uvicorn, server_runs, loaded
):
    settings.FLOWS_EXECUTOR = "celery"
    settings.FLOWS_SERVER_RUNS = server_runs
    embedded.maybe_warm_up()
    assert (RUNNER in cold_runtime.cache) is loaded


def test_a_process_that_serves_nothing_is_not_warmed_at_import(settings, cold_runtime, monkeypatch):
    settings.FLOWS_EXECUTOR = "embedded"
    monkeypatch.setattr(sys, "argv", ["manage.py", "migrate"])
    embedded.maybe_warm_up()
    assert RUNNER not in cold_runtime.cache


def test_a_celery_pool_process_loads_the_runner_before_its_first_run(cold_runtime):
    warm_up_pool_process()
    assert RUNNER in cold_runtime.cache


def test_warming_up_can_be_turned_off(settings, cold_runtime):
    settings.FLOWS_WARM_UP = False
    warm_up_pool_process()
    assert RUNNER not in cold_runtime.cache
