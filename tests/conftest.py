"""Fixtures shared by every test folder: fake outside services that need no per-suite setup, and
a block that fails on demand."""

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flows.capabilities import CapabilityError
from flows.catalog import CATALOG, Block, Param, register_block
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram


@pytest.fixture(autouse=True)
def fresh_version_cache() -> Iterator[None]:
    """Each test's database starts over, and its rolled-back ids come back with other content:
    a deployed version kept in memory (flows.engine.runs) must not outlive its test. A real
    database never hands out a version's id twice."""
    from flows.engine import runs

    runs.forget_versions()
    yield


@pytest.fixture
def slack(settings) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        settings.FLOWS_SLACK_API_URL = fake.api_url
        yield fake


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def telegram(settings) -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        settings.FLOWS_TELEGRAM_API_URL = fake.url
        yield fake


@pytest.fixture
def flaky_block() -> Iterator[dict[str, int]]:
    """A block failing with a retryable error until its `succeed_on`-th attempt."""
    calls: dict[str, int] = {"count": 0}

    def execute(config: dict, ctx) -> dict:
        calls["count"] += 1
        ctx.log("info", f"call {calls['count']}")
        if calls["count"] < config["succeed_on"]:
            raise CapabilityError("the service is busy", retryable=calls["count"] < 99)
        return {"calls": calls["count"]}

    register_block(
        Block(
            kind="test.flaky",
            category="logic",
            title="Flaky",
            description="Fails until the nth call.",
            params=(Param("succeed_on", "integer", default=2),),
            execute=execute,
        )
    )
    yield calls
    CATALOG.pop("test.flaky")


@pytest.fixture(scope="session")
def app_key() -> tuple[str, bytes]:
    """A GitHub App's private key (PEM, as GitHub hands it out) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture(scope="session")
def sdk_modules() -> dict[str, bytes]:
    """Every SDK example and compiled hostile guest, built from source (cached by source digest
    under build/guests/): rust_word_count, rust_prompt_builder, rust_hostile, c_word_count,
    zig_word_count, assemblyscript_word_count."""
    from tests.wasm_guests import assemblyscript_guests, rust_guests, zig_and_c_guests

    rust = rust_guests()
    zig_and_c = zig_and_c_guests()
    return {
        "rust_word_count": rust["word_count"],
        "rust_prompt_builder": rust["prompt_builder"],
        "rust_hostile": rust["hostile"],
        "c_word_count": zig_and_c["c_word_count"],
        "zig_word_count": zig_and_c["zig_word_count"],
        "assemblyscript_word_count": assemblyscript_guests()["word_count"],
    }
