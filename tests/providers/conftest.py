"""Fixtures for the vendor providers: fake servers on 127.0.0.1 and settings that point
provider aliases at them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otp_auth.providers import get_provider
from tests.fakes import FakeArkesel, FakeTwilio

#: Short timeouts keep the timeout tests fast; the fakes answer in milliseconds.
FAST = {"connect_timeout": 1.0, "read_timeout": 0.2}
WEBHOOK_BASE = "https://otp.example.com"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live: talks to a real vendor; runs only with credentials in the environment"
    )


@pytest.fixture
def fake_arkesel() -> Iterator[FakeArkesel]:
    with FakeArkesel() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake  # type: ignore[misc]


def code_in(text: str) -> str:
    """The code in a message body, as the user would read it."""
    match = re.search(r"\b(\d{6})\b", text)
    assert match, "no code in the message"
    return match.group(1)


def arkesel_options(fake: FakeArkesel, **extra: Any) -> dict[str, Any]:
    return {"api_key": fake.api_key, "sender_id": "Example", "base_url": fake.url, **FAST, **extra}


def twilio_options(fake: FakeTwilio, **extra: Any) -> dict[str, Any]:
    return {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "base_url": fake.url,
        **FAST,
        **extra,
    }


@pytest.fixture
def use_providers(settings: Any) -> Callable[..., None]:
    """Configure ``OTP_AUTH['PROVIDERS']`` (plus the test email alias) and other keys.

    ``use_providers(default=("otp_auth.providers.arkesel.SMSProvider", {...}))``
    """

    def configure(extra: dict[str, Any] | None = None, **aliases: tuple[str, dict[str, Any]]):
        providers = {
            alias: {"BACKEND": backend, "OPTIONS": options}
            for alias, (backend, options) in aliases.items()
        }
        providers.setdefault("email", {"BACKEND": "otp_auth.providers.email.EmailProvider"})
        settings.OTP_AUTH = {
            **settings.OTP_AUTH,
            "PROVIDERS": providers,
            **(extra or {}),
        }
        get_provider.cache_clear()

    return configure
