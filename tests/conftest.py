"""Fixtures shared by every test folder: fake outside services that need no per-suite setup."""

from collections.abc import Iterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram


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
