"""Ending other sessions: the per-process memo of the revocation version."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from otp_auth.models import SessionRevocation
from otp_auth.services import revocation
from tests.conftest import login_fully

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revocation_by_another_process_applies_within_the_memo_window(user, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(revocation.time, "monotonic", clock)
    client = Client()
    login_fully(client)
    assert client.get("/private/").status_code == 200

    # Another process revokes: it writes the row and a new version in the shared cache.
    SessionRevocation.objects.update_or_create(
        user_id=user.pk, defaults={"revoked_at": timezone.now()}
    )
    cache.set(revocation.VERSION_KEY, "from-another-process", None)

    clock.now += revocation.MEMO_SECONDS / 2
    assert client.get("/private/").status_code == 200  # still within this process's memo

    clock.now += revocation.MEMO_SECONDS
    response = client.get("/private/")
    assert response.status_code == 302  # logged out on the next check
    assert client.get("/private/").status_code == 302


def test_a_revocation_in_this_process_applies_at_once(user, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(revocation.time, "monotonic", clock)
    victim = Client()
    login_fully(victim)
    assert victim.get("/private/").status_code == 200

    revocation.revoke_other_sessions(None, user)

    assert victim.get("/private/").status_code == 302
