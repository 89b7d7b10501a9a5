"""Admin: a read-only audit that never shows a code or its hash, behind the second factor."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.models import Challenge, Device
from otp_auth.services import issue_challenge
from tests.conftest import last_code, login_fully

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/otp_auth/challenge/"


@pytest.fixture
def admin_client(make_user: Any) -> Client:
    """A superuser whose session passed the second factor through the real login flow."""
    make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    login_fully(client, "root")
    return client


@pytest.fixture
def pending(make_user: Any, admin_client: Client) -> tuple[Challenge, str]:
    """A challenge still waiting for its code, so its hash is stored."""
    alice = make_user("alice")
    challenge = issue_challenge(user=alice, device=alice.otp_devices.get(), purpose=Purpose.LOGIN)
    challenge.refresh_from_db()
    assert challenge.code_hash
    return challenge, last_code()


def standalone(code: str, html: str) -> bool:
    """True if ``code`` appears in ``html`` as a token of its own (not inside a longer one)."""
    return re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", html) is not None


def test_changelist_lists_challenges_without_secrets(
    admin_client: Client, pending: tuple[Challenge, str]
) -> None:
    challenge, code = pending
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["cl"].result_count == 2
    assert "\u2022\u2022\u2022\u20224567" in html
    assert "+233241234567" not in html
    assert challenge.code_hash not in html
    assert "code_hash" not in html
    assert not standalone(code, html)


def test_change_page_is_read_only_and_hides_the_hash(
    admin_client: Client, pending: tuple[Challenge, str]
) -> None:
    challenge, code = pending
    response = admin_client.get(f"{CHANGELIST}{challenge.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert challenge.code_hash not in html
    assert "code_hash" not in html
    assert not standalone(code, html)
    assert "+233241234567" not in html
    assert "\u2022\u2022\u2022\u20224567" in html
    # Read-only: no form inputs for the fields and no save button.
    assert 'name="status"' not in html
    assert 'name="_save"' not in html


def test_add_change_and_delete_are_refused(
    admin_client: Client, pending: tuple[Challenge, str]
) -> None:
    challenge, _ = pending
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}add/", {"purpose": "login"}).status_code == 403
    response = admin_client.post(
        f"{CHANGELIST}{challenge.pk}/change/", {"status": ChallengeStatus.VERIFIED}
    )
    assert response.status_code == 403
    assert admin_client.get(f"{CHANGELIST}{challenge.pk}/delete/").status_code == 403
    assert (
        admin_client.post(f"{CHANGELIST}{challenge.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.PENDING
    assert Challenge.objects.count() == 2


def test_no_bulk_actions(admin_client: Client, pending: tuple[Challenge, str]) -> None:
    challenge, _ = pending
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'name="action"' not in html
    assert "delete_selected" not in html
    admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [challenge.pk], "post": "yes"}
    )
    assert Challenge.objects.filter(pk=challenge.pk).exists()


def test_filters_are_offered_and_work(admin_client: Client, pending: tuple[Challenge, str]) -> None:
    response = admin_client.get(CHANGELIST)
    specs = response.context["cl"].filter_specs
    assert [spec.title for spec in specs] == [
        "purpose",
        "channel",
        "status",
        "provider",
        "created",
    ]
    html = response.content.decode()
    for title in ("By purpose", "By channel", "By status", "By provider", "By created"):
        assert title in html
    pending_only = admin_client.get(CHANGELIST, {"status__exact": ChallengeStatus.PENDING})
    assert pending_only.context["cl"].result_count == 1
    verified = admin_client.get(CHANGELIST, {"status__exact": ChallengeStatus.VERIFIED})
    assert verified.context["cl"].result_count == 1


def test_search_by_username(admin_client: Client, pending: tuple[Challenge, str]) -> None:
    response = admin_client.get(CHANGELIST, {"q": "alice"})
    assert response.context["cl"].result_count == 1


def test_device_admin_shows_masked_destinations_only(
    admin_client: Client, pending: tuple[Challenge, str]
) -> None:
    response = admin_client.get("/admin/otp_auth/device/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "\u2022\u2022\u2022\u20224567" in html
    assert "+233241234567" not in html
    device = Device.objects.get(user__username="alice")
    page = admin_client.get(f"/admin/otp_auth/device/{device.pk}/change/").content.decode()
    assert "+233241234567" not in page
    assert admin_client.get("/admin/otp_auth/device/add/").status_code == 403


def test_admin_needs_the_second_factor(make_user: Any) -> None:
    root = make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)  # password only
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/verify/")


def test_staff_without_permission_cannot_read_challenges(make_user: Any) -> None:
    make_user("clerk", phone="+233551234567", is_staff=True)
    client = Client()
    login_fully(client, "clerk")
    assert client.get(CHANGELIST).status_code == 403


# The audit list, the unlock button, the user admin -------------------------------------


def _staff_verified(client, make_user):
    from .conftest import login_fully

    make_user("boss", is_staff=True, is_superuser=True)
    login_fully(client, "boss")


def test_the_audit_list_has_five_columns_with_the_details_in_one(client, make_user) -> None:
    from otp_auth.models import AuditEvent

    _staff_verified(client, make_user)
    AuditEvent.objects.create(
        kind="code_sent",
        outcome="success",
        channel="sms",
        destination="••••4567",
        ip_address="192.0.2.7",
        reason="login",
    )
    page = client.get("/admin/otp_auth/auditevent/").content.decode()
    headers = re.findall(r'<th scope="col" class="(?:sortable )?column-(\w+)', page)
    assert headers == ["created_at", "kind", "outcome", "user", "summary"]
    assert "SMS ••••4567 · 192.0.2.7 · login" in page


def test_a_lockout_is_unlocked_with_the_button_of_its_page(client, make_user) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from otp_auth.models import AuditEvent, Lockout

    _staff_verified(client, make_user)
    locked = make_user("locked", phone="+233241111119")
    state = Lockout.objects.create(
        user=locked, failures=10, locked_until=timezone.now() + timedelta(minutes=15)
    )
    url = f"/admin/otp_auth/lockout/{state.pk}/change/"
    page = client.get(url).content.decode()
    unlock = f"/admin/otp_auth/lockout/{state.pk}/unlock/"
    assert f'action="{unlock}"' in page and "Unlock second factor" in page
    assert client.get(unlock).status_code == 405
    response = client.post(unlock)
    assert response.status_code == 302 and response["Location"] == url
    state.refresh_from_db()
    assert (state.failures, state.locked_until) == (0, None)
    event = AuditEvent.objects.get(kind="unlocked")
    assert event.actor.username == "boss"
    assert "Unlock second factor" not in client.get(url).content.decode()
    assert str(state) == "Second factor of locked"


def test_the_unlock_button_needs_the_unlock_permission(client, make_user) -> None:
    from django.contrib.auth.models import Permission

    from otp_auth.models import Lockout

    from .conftest import login_fully

    clerk = make_user("clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_lockout"))
    victim = make_user("victim", phone="+233241111118")
    state = Lockout.objects.create(user=victim, failures=3)
    login_fully(client, "clerk")
    url = f"/admin/otp_auth/lockout/{state.pk}/change/"
    assert "Unlock second factor" not in client.get(url).content.decode()
    assert client.post(f"/admin/otp_auth/lockout/{state.pk}/unlock/").status_code == 403
    state.refresh_from_db()
    assert state.failures == 3


def test_the_user_admin_shows_the_users_factors(client, make_user) -> None:
    _staff_verified(client, make_user)
    alice = make_user("alice2", phone="+233241111117")
    page = client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert "Two-factor authentication" in page
    assert "Phone (••••1117)" in page


def test_the_admin_password_change_needs_a_fresh_second_factor(client, make_user, clock):
    _staff_verified(client, make_user)
    alice = make_user("alice3", phone="+233241111116")
    url = f"/admin/auth/user/{alice.pk}/password/"
    assert client.get(url).status_code == 200  # just signed in: fresh
    clock.shift(3600)
    response = client.post(url, {"password1": "x-new-pass-42!", "password2": "x-new-pass-42!"})
    assert response.status_code == 302
    assert response["Location"].startswith("/account/step-up/")
    alice.refresh_from_db()
    assert alice.check_password("correct horse battery staple")
