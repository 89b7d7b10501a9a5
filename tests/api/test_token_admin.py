"""DRF's tokens in the admin: the user, the time and a key prefix, never the key."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rest_framework")

from django.contrib import admin  # noqa: E402
from django.contrib.admin.models import LogEntry  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token, TokenProxy  # noqa: E402

from otp_auth.api.admin import OTPTokenAdmin, masked_key  # noqa: E402
from tests.conftest import login_fully  # noqa: E402

from .conftest import log_in  # noqa: E402

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/authtoken/tokenproxy/"


@pytest.fixture
def staff(make_user: Any) -> Client:
    """A superuser signed in through both steps."""
    make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    login_fully(client, "root")
    return client


@pytest.fixture
def key(user: Any, api: Any) -> str:
    """A key issued by the API after the second factor: a live credential."""
    return log_in(api)


def test_drf_token_admin_is_replaced() -> None:
    assert isinstance(admin.site._registry[TokenProxy], OTPTokenAdmin)


def test_the_list_shows_user_time_and_prefix_but_never_the_key(
    staff: Client, key: str, user: Any
) -> None:
    response = staff.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert key not in page
    assert key[:8] not in page
    assert masked_key(key) in page
    assert "alice" in page
    assert f'name="_selected_action" value="{user.pk}"' in page  # rows go by user


def test_no_page_shows_the_key_and_no_form_makes_one(staff: Client, key: str, user: Any) -> None:
    for suffix in (f"{user.pk}/change/", f"{user.pk}/", f"{user.pk}/history/", "add/"):
        response = staff.get(CHANGELIST + suffix, follow=True)
        assert response.status_code == 404, suffix
        assert key not in response.content.decode()
    assert staff.get(f"{CHANGELIST}{user.pk}/delete/", follow=True).status_code == 404
    staff.post(CHANGELIST + "add/", {"user": user.pk})
    assert Token.objects.get(user=user).key == key
    assert key not in staff.get("/admin/").content.decode()


def test_no_search_or_filter_matches_a_key(staff: Client, key: str) -> None:
    assert "0 results" in staff.get(CHANGELIST, {"q": key}).content.decode()
    assert "alice" in staff.get(CHANGELIST, {"q": "alice"}).content.decode()
    for lookup in ("key", "key__startswith", "pk__startswith", "key__gt"):
        response = staff.get(CHANGELIST, {lookup: key[:1]})
        assert response.status_code == 400, lookup
        assert key not in response.content.decode()


def test_staff_revoke_tokens_without_the_key_being_logged(
    staff: Client, key: str, user: Any, api: Any
) -> None:
    response = staff.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [str(user.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert "Revoked 1 token." in response.content.decode()
    assert not Token.objects.filter(user=user).exists()
    assert not LogEntry.objects.filter(object_repr__contains=key).exists()
    assert api.get("/api/me/").status_code == 401
