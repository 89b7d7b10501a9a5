from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from otp_auth.models import Device
from otp_auth.providers import locmem

PASSWORD = "correct horse battery staple"


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
