"""Limits: defaults from settings, per-step overrides capped by the operator's maxima."""

from __future__ import annotations

import pytest

from flows.sandbox import Limits, run_python_step
from flows.sandbox.limits import format_size


def test_defaults_come_from_settings(settings: object) -> None:
    settings.FLOWS_STEP_TIMEOUT_S = 12
    settings.FLOWS_STEP_LOG_BYTES = 1000
    limits = Limits()
    assert limits.as_dict() == {
        "memory_mib": 256,
        "timeout_s": 12,
        "fuel": 20_000_000_000,
        "output_bytes": 1_048_576,
        "log_bytes": 1000,
    }
    assert Limits.from_overrides(None) == limits == Limits.from_overrides({})


def test_overrides_replace_only_what_they_name() -> None:
    limits = Limits.from_overrides({"timeout_s": 120, "memory_mib": 512.0, "log_bytes": 10})
    assert (limits.timeout_s, limits.memory_mib, limits.log_bytes) == (120, 512, 10)
    assert isinstance(limits.memory_mib, int)
    assert (limits.fuel, limits.output_bytes) == (Limits().fuel, Limits().output_bytes)
    assert Limits.from_overrides({"timeout_s": 0.5}).timeout_s == 0.5


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (
            {"timeout_s": 301},
            "limit 'timeout_s' is 301 s, above this server's maximum of 300 s",
        ),
        (
            {"memory_mib": 2048},
            "limit 'memory_mib' is 2048 MiB, above this server's maximum of 1024 MiB",
        ),
        (
            {"fuel": 10**12},
            "limit 'fuel' is 1,000,000,000,000, above this server's maximum of 200,000,000,000",
        ),
        (
            {"output_bytes": 10**9},
            "limit 'output_bytes' is 953.7 MB, above this server's maximum of 16 MB",
        ),
        (
            {"cpu": 1},
            "unknown limit 'cpu' (known limits: memory_mib, timeout_s, fuel, "
            "output_bytes, log_bytes)",
        ),
        ({"timeout_s": -1}, "limit 'timeout_s' must be a positive number, not -1"),
        ({"timeout_s": "60"}, "limit 'timeout_s' must be a positive number, not '60'"),
        ({"memory_mib": True}, "limit 'memory_mib' must be a positive whole number, not True"),
        ({"memory_mib": 1.5}, "limit 'memory_mib' must be a positive whole number, not 1.5"),
        ({"timeout_s": float("inf")}, "limit 'timeout_s' must be a positive number, not inf"),
        (["timeout_s"], 'limits must be an object such as {"timeout_s": 60}'),
    ],
)
def test_overrides_beyond_what_the_operator_allows_are_refused(
    overrides: object, error: str
) -> None:
    with pytest.raises(ValueError) as refused:
        Limits.from_overrides(overrides)
    assert str(refused.value) == error


def test_the_operator_decides_the_maxima(settings: object) -> None:
    settings.FLOWS_STEP_TIMEOUT_S_MAX = 600
    assert Limits.from_overrides({"timeout_s": 600}).timeout_s == 600


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KB"),
        (262_144, "256 KB"),
        (1_048_576, "1 MB"),
        (2_202_009, "2.1 MB"),
        (5 * 1024**3, "5 GB"),
    ],
)
def test_sizes_read_like_the_limit_messages(size: int, text: str) -> None:
    assert format_size(size) == text


def test_an_output_limit_override_applies_to_the_step() -> None:
    result = run_python_step(
        "def main(event, ctx):\n    return 'x' * 2000\n",
        {},
        step="short",
        limits=Limits.from_overrides({"output_bytes": 1024}),
    )
    assert (result.error_kind, result.error) == (
        "output",
        "step 'short' returned 2 KB of output; the limit is 1 KB",
    )


def test_a_memory_limit_below_what_the_interpreter_needs_fails_clearly() -> None:
    result = run_python_step(
        "def main(event, ctx):\n    return 1\n", {}, step="tiny", limits=Limits(memory_mib=8)
    )
    assert (result.error_kind, result.error) == (
        "memory",
        "step 'tiny' exceeded its 8 MiB memory limit",
    )
