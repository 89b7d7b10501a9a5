from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PASSWORD, last_code

# Test modules here start with pytest.importorskip("rest_framework"); this file must
# import without it, so DRF is only imported inside the fixture.

LOGIN = "/api/login/"
VERIFY = "/api/login/verify/"
RESEND = "/api/login/resend/"
SWITCH = "/api/login/switch/"
CANCEL = "/api/login/cancel/"
ME = "/api/me/"
DEVICES = "/api/devices/"
CONFIRM = "/api/devices/confirm/"
STEP_UP = "/api/step-up/"


@pytest.fixture
def api() -> Any:
    from rest_framework.test import APIClient

    return APIClient()


def password_step(api: Any, username: str = "alice", password: str = PASSWORD) -> Any:
    return api.post(LOGIN, {"username": username, "password": password})


def start(api: Any, username: str = "alice") -> str:
    """The password step; returns the login challenge."""
    response = password_step(api, username)
    assert response.status_code == 202, response.content
    return str(response.json()["challenge"])


def verify(api: Any, challenge: str, code: str | None = None) -> Any:
    return api.post(VERIFY, {"challenge": challenge, "code": last_code() if code is None else code})


def log_in(api: Any, username: str = "alice") -> str:
    """Both steps; returns the token and authenticates ``api`` with it."""
    response = verify(api, start(api, username))
    assert response.status_code == 200, response.content
    token = str(response.json()["token"])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return token


def wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


@pytest.fixture
def fixed_codes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fixed_codes("111111", "222222")``: the next challenges get these codes, in order."""

    def use(*codes: str) -> None:
        queue = iter(codes)
        monkeypatch.setattr(
            "otp_auth.services.challenges.generate_code", lambda *args, **kwargs: next(queue)
        )

    return use


def with_email_device(make_user: Any, username: str = "alice", **extra: Any) -> Any:
    """A user with a phone and an email device; the phone is the most recently used."""
    from django.utils import timezone

    from otp_auth.models import Device

    user = make_user(username, email=f"{username}@mail.example", **extra)
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def last_email_code() -> str:
    import re

    from django.core import mail

    match = re.search(r"\b([0-9]{6})\b", mail.outbox[-1].body)
    assert match, "no code in the last email"
    return match.group(1)
