"""Remembered browsers (R63): off by default; a random, signed, HttpOnly, Secure cookie
bound to the user; revoked by password and factor changes and from the devices page;
never for staff unless allowed; never based on the client's address."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from otp_auth.models import Device, TrustedBrowser
from otp_auth.services import trusted
from tests.conftest import last_code, otp_settings, password_step
from tests.factor_helpers import DEVICES, STEP_UP, VERIFY, add_authenticator, is_logged_in

pytestmark = pytest.mark.django_db

COOKIE = "otp_auth_trusted"
ON = {"TRUSTED_BROWSERS": True}


def remember_me(client: Client, username: str = "alice") -> Any:
    """Log in with a code, asking to remember the browser; returns the verify response."""
    password_step(client, username)
    return client.post(VERIFY, {"code": last_code(), "remember": "1"})


def sent_codes(outbox: list[Any]) -> int:
    return len(outbox)


def log_out(client: Client) -> None:
    client.post("/account/logout/")
    assert not is_logged_in(client)


def test_off_by_default_no_checkbox_and_no_cookie(client, user):
    password_step(client)
    assert 'name="remember"' not in client.get(VERIFY).content.decode()

    response = client.post(VERIFY, {"code": last_code(), "remember": "1"})

    assert COOKIE not in response.cookies
    assert not TrustedBrowser.objects.exists()


def test_the_cookie_is_random_signed_http_only_secure_and_strict(client, user):
    with otp_settings(**ON):
        password_step(client)
        assert "Remember this browser for 30 days" in client.get(VERIFY).content.decode()
        response = client.post(VERIFY, {"code": last_code(), "remember": "1"})

    morsel = response.cookies[COOKIE]
    assert morsel["secure"] and morsel["httponly"]
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == 30 * 86_400
    token = signing.Signer(salt=trusted.SALT).unsign(morsel.value)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    # Nothing but the token and its signature: no user id, no name, no address.
    assert morsel.value.rpartition(":")[0] == token and ":" not in token
    record = TrustedBrowser.objects.get()
    assert record.user == user
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in record.token_hash


def test_a_remembered_browser_skips_the_code_but_not_a_step_up(client, user, outbox):
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)
        sends = sent_codes(outbox)

        response = password_step(client)

        assert response["Location"] == "/home/"
        assert sent_codes(outbox) == sends
        assert is_logged_in(client)
        assert client.get("/strict/").status_code == 200
        sensitive = client.get("/sensitive/")
        assert sensitive.status_code == 302
        assert sensitive["Location"].startswith(STEP_UP)
    assert TrustedBrowser.objects.get().last_used_at is not None


def test_the_client_address_plays_no_part(client, user, outbox):
    with otp_settings(**ON):
        password_step(client, REMOTE_ADDR="203.0.113.7")
        client.post(VERIFY, {"code": last_code(), "remember": "1"}, REMOTE_ADDR="203.0.113.7")
        log_out(client)

        # Same cookie, another network: still remembered.
        assert password_step(client, REMOTE_ADDR="198.51.100.9")["Location"] == "/home/"
        log_out(client)
        # Same network, no cookie: a code is needed.
        stranger = Client()
        assert password_step(stranger, REMOTE_ADDR="203.0.113.7")["Location"] == VERIFY


def test_the_cookie_is_bound_to_its_user(client, user, make_user, outbox):
    make_user("bob", phone="+233201234567")
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)

        response = password_step(client, "bob")

    assert response["Location"] == VERIFY


@pytest.mark.parametrize("tamper", ["forged", "unsigned", "huge"])
def test_a_forged_cookie_is_ignored(client, user, tamper):
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)
        value = client.cookies[COOKIE].value
        token = signing.Signer(salt=trusted.SALT).unsign(value)
        client.cookies[COOKIE] = {
            "forged": value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
            "unsigned": token,
            "huge": value + "x" * 5000,
        }[tamper]

        assert password_step(client)["Location"] == VERIFY


def test_an_expired_record_is_ignored_and_deleted(client, user, clock):
    with otp_settings(**ON, TRUSTED_BROWSER_DAYS=2):
        remember_me(client)
        log_out(client)
        clock.shift(timedelta(days=2, seconds=1))

        assert password_step(client)["Location"] == VERIFY
    assert not TrustedBrowser.objects.exists()


def test_a_password_change_revokes_it(client, user):
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)
        user.set_password("another correct horse battery")
        user.save()
        user.set_password("correct horse battery staple")  # back to the fixture's password
        user.save()

        assert password_step(client)["Location"] == VERIFY


@pytest.mark.parametrize("change", ["add_app", "add_device", "remove_device"])
def test_any_factor_change_revokes_it(client, user, change):
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)
        if change == "add_app":
            add_authenticator(user)
        elif change == "add_device":
            Device.objects.create(
                user=user, email="x@example.org", channels=["email"], confirmed=True
            )
        else:
            Device.objects.create(
                user=user, email="x@example.org", channels=["email"], confirmed=True
            )
            # remembered again with two devices, then one goes (as from the admin)
            TrustedBrowser.objects.all().delete()
            remember_me(client)
            log_out(client)
            Device.objects.filter(email="x@example.org").delete()

        assert password_step(client)["Location"] == VERIFY


def test_factor_changes_through_the_services_delete_the_records(client, user):
    from otp_auth.services import factors

    with otp_settings(**ON):
        remember_me(client)
        assert TrustedBrowser.objects.count() == 1
        device, _seed = add_authenticator(user)

        factors.factor_added_hook(None, user, device)

    assert not TrustedBrowser.objects.exists()


def test_the_devices_page_lists_and_forgets_browsers(client, user):
    with otp_settings(**ON):
        remember_me(client)
        other = Client()
        remember_me(other)
        page = client.get(DEVICES).content.decode()
        assert page.count("/forget/") == 3  # two browsers and "forget all"
        assert "This browser" in page
        mine = TrustedBrowser.objects.order_by("pk").first()

        response = client.post(f"/account/browsers/{mine.pk}/forget/")

        assert response.cookies[COOKIE].value == ""
        assert list(TrustedBrowser.objects.values_list("pk", flat=True)) != [mine.pk]
        assert TrustedBrowser.objects.count() == 1
        client.post("/account/browsers/forget/")
        assert not TrustedBrowser.objects.exists()


def test_another_users_browser_cannot_be_forgotten(client, user, make_user):
    bob = make_user("bob", phone="+233201234567")
    record = TrustedBrowser.objects.create(
        user=bob, token_hash="0" * 64, fingerprint="", expires_at=timezone.now() + timedelta(days=1)
    )
    with otp_settings(**ON):
        password_step(client)
        client.post(VERIFY, {"code": last_code()})

        client.post(f"/account/browsers/{record.pk}/forget/")

    assert TrustedBrowser.objects.filter(pk=record.pk).exists()


def test_staff_are_never_remembered_unless_the_site_allows_it(client, make_user):
    make_user("root", is_staff=True)
    with otp_settings(**ON):
        password_step(client, "root")
        assert 'name="remember"' not in client.get(VERIFY).content.decode()
        response = client.post(VERIFY, {"code": last_code(), "remember": "1"})
        assert COOKIE not in response.cookies

    with otp_settings(**ON, TRUSTED_BROWSER_STAFF=True):
        log_out(client)
        remember_me(client, "root")
        log_out(client)
        assert password_step(client, "root")["Location"] == "/home/"

    with otp_settings(**ON):  # the site changes its mind: the cookie no longer counts
        log_out(client)
        assert password_step(client, "root")["Location"] == VERIFY


def test_turning_the_feature_off_ignores_existing_cookies(client, user):
    with otp_settings(**ON):
        remember_me(client)
        log_out(client)

    assert password_step(client)["Location"] == VERIFY
