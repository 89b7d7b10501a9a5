from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from otp_auth.models import Device
from otp_auth.providers import locmem

PASSWORD = "correct horse battery staple"

# tests/importing needs the apps of tests.settings_import; test_import_suite.py runs it in
# a pytest process of its own.
if os.environ.get("DJANGO_SETTINGS_MODULE") != "tests.settings_import":
    collect_ignore = ["importing"]


@pytest.fixture(autouse=True)
def _clean_outbox() -> Iterator[None]:
    locmem.clear()
    yield
    locmem.clear()


@pytest.fixture
def outbox() -> list[Any]:
    return locmem.outbox


def last_code(box: list[Any] | None = None) -> str:
    """The code in the newest locmem message (what the user reads on their phone)."""
    box = locmem.outbox if box is None else box
    match = re.search(r"\b([0-9A-Z]{6,})\b", box[-1].text)
    assert match, "no code in the last message"
    return match.group(1)


@pytest.fixture
def make_user(django_user_model: Any) -> Any:
    def make(
        username: str = "alice",
        *,
        phone: str | None = "+233241234567",
        email: str | None = None,
        **extra: Any,
    ) -> Any:
        user = django_user_model.objects.create_user(
            username=username, password=PASSWORD, email=f"{username}@example.com", **extra
        )
        if phone:
            Device.objects.create(
                user=user,
                phone_number=phone,
                channels=["sms", "voice"],
                confirmed=True,
                name="Phone",
            )
        if email:
            Device.objects.create(
                user=user, email=email, channels=["email"], confirmed=True, name="Mail"
            )
        return user

    return make


@pytest.fixture
def user(make_user: Any) -> Any:
    return make_user()


@pytest.fixture
def client() -> Client:
    return Client()


def password_step(
    client: Client, username: str = "alice", password: str = PASSWORD, **extra: Any
) -> Any:
    return client.post("/account/login/", {"username": username, "password": password, **extra})


def login_fully(client: Client, username: str = "alice") -> None:
    response = password_step(client, username)
    assert response.status_code == 302, response.content[:500]
    response = client.post("/account/login/verify/", {"code": last_code()})
    assert response.status_code == 302, response.content[:500]


def pending_of(client: Client) -> dict[str, Any] | None:
    """The pending login the client's cookie carries (``None`` without one)."""
    from django.core import signing

    from otp_auth.constants import PENDING_COOKIE_NAME
    from otp_auth.services.login import PENDING_SALT

    morsel = client.cookies.get(PENDING_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return None
    data: dict[str, Any] = signing.Signer(salt=PENDING_SALT).unsign_object(morsel.value)
    return data


def set_pending(client: Client, data: dict[str, Any]) -> None:
    """Give the client a pending-login cookie carrying ``data``, signed by the server's
    key: what a client could replay, never what it could forge."""
    from django.core import signing

    from otp_auth.constants import PENDING_COOKIE_NAME
    from otp_auth.services.login import PENDING_SALT

    value = signing.Signer(salt=PENDING_SALT).sign_object(data, compress=True)
    client.cookies[PENDING_COOKIE_NAME] = value


def otp_settings(**changes: Any) -> Any:
    """``override_settings`` for a few ``OTP_AUTH`` keys, keeping the rest of the test setup."""
    from django.conf import settings
    from django.test import override_settings

    return override_settings(OTP_AUTH={**settings.OTP_AUTH, **changes})


@pytest.fixture
def unique_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """No two codes of one test are equal, so "the old code is refused" can never pass or
    fail by a one-in-a-million collision."""
    from otp_auth.crypto import generate_code
    from otp_auth.services import challenges

    seen: set[str] = set()

    def distinct(*args: Any, **kwargs: Any) -> str:
        code = generate_code(*args, **kwargs)
        while code in seen:
            code = generate_code(*args, **kwargs)
        seen.add(code)
        return code

    monkeypatch.setattr(challenges, "generate_code", distinct)


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """Time frozen at now; ``clock.shift(seconds)`` moves it (database and session clocks)."""
    import datetime as dt

    time_machine.move_to(dt.datetime.now(dt.UTC), tick=False)
    return time_machine


def wrong_code(code: str) -> str:
    """A well-formed code that is certainly not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


# CI sets OTP_AUTH_REQUIRE_POSTGRES=1 (and _REDIS, _BROWSER, _WORKER, _VENDORS, _GETTEXT)
# where the service or tool is there: a test carrying that marker which skips there is
# reported as failed, so a broken setup cannot pass silently as "skipped".
REQUIRABLE_MARKERS = ("postgres", "redis", "browser", "worker", "vendors", "gettext")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    import os

    for marker in REQUIRABLE_MARKERS:
        variable = f"OTP_AUTH_REQUIRE_{marker.upper()}"
        if item.get_closest_marker(marker) and os.environ.get(variable) == "1":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = f"{variable}=1 but this {marker} test skipped: {reason}"
            return


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Rate-limit counters live in the cache, which outlives a test: start each test with
    none. (Under xdist with Redis, each worker has its own Redis database.) Parsed
    settings and built providers start afresh too, so that no test sees another's."""
    from django.conf import settings
    from django.core.cache import caches

    from otp_auth.conf import app_settings
    from otp_auth.providers import get_provider
    from otp_auth.services.epoch import forget_memo

    for alias in settings.CACHES:
        caches[alias].clear()
    forget_memo()
    app_settings.clear()
    get_provider.cache_clear()
