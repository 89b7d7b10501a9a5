"""Choosing a factor at login, step-up with ``max_age``, removing factors (other sessions
end: R61), notifications (R60) and the password change behind a fresh factor."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.views import View

from otp_auth.conf import app_settings
from otp_auth.constants import ChallengeStatus
from otp_auth.decorators import otp_required
from otp_auth.mixins import OTPRequiredMixin
from otp_auth.models import Challenge, Device, SecurityEpoch, TOTPDevice
from otp_auth.services import epoch, recovery
from tests.conftest import (
    PASSWORD,
    last_code,
    login_fully,
    password_step,
    pending_of,
    wrong_code,
)
from tests.factor_helpers import (
    DEVICES,
    PASSWORD_CHANGE,
    STEP_UP,
    SWITCH,
    VERIFY,
    add_authenticator,
    code_now,
    is_logged_in,
    notifications,
    other_code,
    plain_login,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unique_codes")]


def page(client: Client, url: str = VERIFY) -> str:
    return client.get(url).content.decode()


def make_fresh(client: Client, user: Any) -> None:
    session = client.session
    session["_otp_auth_step_up"] = {
        "user": str(user.pk),
        "at": int(time.time()),
        "e": epoch.current(user),
    }
    session.save()


def make_stale(client: Client, user: Any) -> None:
    session = client.session
    session["_otp_auth_step_up"] = {"user": str(user.pk), "at": int(time.time()) - 3600}
    session.save()


@pytest.fixture
def app_user(make_user: Any) -> tuple[Any, bytes]:
    """A user whose only factor is an authenticator app."""
    user = make_user(phone=None)
    _device, seed = add_authenticator(user)
    return user, seed


# Choosing a factor at login.


def test_an_app_only_user_gets_no_message_and_logs_in_with_the_app(client, app_user, outbox):
    _user, seed = app_user

    response = password_step(client)

    assert response["Location"] == VERIFY
    assert outbox == []
    assert "authenticator app (<strong>Phone app</strong>)" in page(client)
    client.post(VERIFY, {"code": code_now(seed)})
    assert is_logged_in(client)
    assert client.session["_otp_auth_verified"]["factor"] == "totp"


def test_an_app_only_user_is_never_let_in_on_the_password_alone(client, app_user):
    _user, seed = app_user
    plain_login(client)

    refused = client.get("/private/")

    assert refused.status_code == 302
    assert refused["Location"].startswith(VERIFY)
    client.get(refused["Location"])  # resumes the second step with the app
    client.post(VERIFY, {"code": code_now(seed)})
    assert is_logged_in(client)


def test_the_default_is_the_factor_used_last(client, user, outbox, clock):
    _device, seed = add_authenticator(user)
    phone = Device.objects.get(user=user)
    TOTPDevice.objects.filter(user=user).update(last_used_at="2020-01-01T00:00:00Z")
    Device.objects.filter(pk=phone.pk).update(last_used_at="2021-01-01T00:00:00Z")

    password_step(client)
    assert len(outbox) == 1
    client.post(VERIFY, {"code": last_code()})
    client.post("/account/logout/")

    TOTPDevice.objects.filter(user=user).update(last_used_at=timezone.now() + timedelta(hours=1))
    password_step(client)
    assert len(outbox) == 1  # the app is now the default: nothing sent
    client.post(VERIFY, {"code": code_now(seed)})
    assert is_logged_in(client)
    client.post("/account/logout/")

    clock.shift(30)
    password_step(client)
    assert len(outbox) == 1  # using the app kept it the default


def test_the_code_page_lists_every_factor_and_switches_between_them(client, make_user, outbox):
    user = make_user(email="alice@example.org")
    _device, seed = add_authenticator(user, name="Aegis")
    recovery.generate_codes(user)
    Device.objects.filter(user=user, email="").update(last_used_at="2030-01-01T00:00:00Z")
    password_step(client)
    sms = Challenge.objects.get()
    assert sms.channel == "sms"

    html = page(client)
    assert "Use your authenticator app (Aegis)" in html
    assert "Use a recovery code" in html
    assert "a••••@example.org" in html

    client.post(SWITCH, {"factor": f"totp:{TOTPDevice.objects.get().pk}"})
    assert "Enter the code your authenticator app (<strong>Aegis</strong>)" in page(client)
    assert "Send a new code" not in page(client)
    client.post(SWITCH, {"factor": "recovery"})
    assert "recovery codes you saved" in page(client)

    # Back to the phone, whose code is still valid: nothing new is sent.
    client.post(SWITCH, {"device": sms.device_id})
    assert len(outbox) == 1
    assert "We sent a code by SMS" in page(client)
    client.post(VERIFY, {"code": last_code()})
    assert is_logged_in(client)


def test_logging_in_with_the_app_cancels_the_code_sent_earlier(client, user, clock):
    _device, seed = add_authenticator(user, last_used_at=None)
    Device.objects.filter(user=user).update(last_used_at="2030-01-01T00:00:00Z")
    password_step(client)
    sms = Challenge.objects.get()

    client.post(SWITCH, {"factor": f"totp:{TOTPDevice.objects.get().pk}"})
    client.post(VERIFY, {"code": code_now(seed)})

    assert is_logged_in(client)
    sms.refresh_from_db()
    assert sms.status == ChallengeStatus.CANCELLED


def test_from_the_app_to_a_device_sends_one_code_there(client, user, outbox):
    add_authenticator(user, last_used_at="2030-01-01T00:00:00Z")
    password_step(client)
    assert outbox == []
    phone = Device.objects.get(user=user)
    assert f'<option value="{phone.pk}">Phone (••••4567)</option>' in page(client)

    client.post(SWITCH, {"device": phone.pk})

    assert len(outbox) == 1
    client.post(VERIFY, {"code": last_code()})
    assert is_logged_in(client)


@pytest.mark.parametrize("factor", ["totp:999", "totp:x", "recovery", "device:999", "sms", ""])
def test_a_factor_the_user_does_not_have_cannot_be_chosen(client, user, make_user, factor):
    add_authenticator(make_user("bob", phone="+233201234567"))
    password_step(client)
    before = pending_of(client)

    client.post(SWITCH, {"factor": factor} if factor else {"device": ""})

    assert pending_of(client)["factor"] == before["factor"] == "code"
    assert pending_of(client)["challenge_id"] == before["challenge_id"]


def test_another_users_app_cannot_be_chosen(client, user, make_user):
    bob = make_user("bob", phone="+233201234567")
    bobs_app, _seed = add_authenticator(bob)
    password_step(client)

    client.post(SWITCH, {"factor": f"totp:{bobs_app.pk}"})

    assert pending_of(client)["factor"] == "code"


def test_wrong_app_codes_are_form_errors_then_slowed_down(client, app_user):
    _user, seed = app_user
    password_step(client)
    right = code_now(seed)
    for _ in range(app_settings.MAX_ATTEMPTS):
        response = client.post(VERIFY, {"code": other_code(right)})
        assert response.status_code == 200
        assert "That code is not valid" in response.content.decode()

    response = client.post(VERIFY, {"code": right})

    assert "Too many attempts. Please try again in" in response.content.decode()
    assert not is_logged_in(client)


def test_the_code_page_never_shows_a_seed_or_a_recovery_code(client, app_user):
    user, seed = app_user
    codes = recovery.generate_codes(user)
    password_step(client)

    html = page(client) + page(client, VERIFY)
    client.post(SWITCH, {"factor": "recovery"})
    html += page(client)

    assert not any(code in html for code in codes)
    assert code_now(seed) not in html


# Step-up: otp_required(max_age=...), with ``fresh`` as its older name.


def _request(client: Client, user: Any) -> HttpRequest:
    request = RequestFactory().get("/somewhere/?a=1")
    request.session = client.session
    request.user = user
    return request


def test_max_age_demands_a_recent_second_factor(client, user):
    @otp_required(max_age=60)
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    login_fully(client)
    assert view(_request(client, user)).content == b"ok"

    make_stale(client, user)
    refused = view(_request(client, user))

    assert refused.status_code == 302
    assert refused["Location"] == f"{STEP_UP}?next=%2Fsomewhere%2F%3Fa%3D1"


def test_fresh_is_an_alias_of_max_age_and_both_cannot_disagree(client, user):
    @otp_required(fresh=60)
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    login_fully(client)
    make_stale(client, user)
    assert view(_request(client, user)).status_code == 302
    assert otp_required(max_age=60, fresh=60)  # same value: fine
    with pytest.raises(TypeError):
        otp_required(max_age=60, fresh=30)
    with pytest.raises(TypeError):
        otp_required(max_age=0)


def test_the_mixin_takes_otp_max_age(client, user):
    class Sensitive(OTPRequiredMixin, View):
        otp_max_age = 60

        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("ok")

    login_fully(client)
    assert Sensitive.as_view()(_request(client, user)).content == b"ok"
    make_stale(client, user)
    assert Sensitive.as_view()(_request(client, user)).status_code == 302
    anonymous = _request(client, user)
    anonymous.user = AnonymousUser()
    assert Sensitive.as_view()(anonymous)["Location"].startswith("/account/login/")


def test_a_step_up_with_the_app(client, user, clock):
    _device, seed = add_authenticator(user)
    Device.objects.filter(user=user).update(last_used_at=timezone.now())  # the default
    login_fully(client)
    make_stale(client, user)
    assert client.get("/sensitive/")["Location"].startswith(STEP_UP)
    assert "Code from your authenticator app" in page(client, STEP_UP)

    wrong = client.post(STEP_UP, {"factor": "totp", "code": other_code(code_now(seed))})
    assert "That code is not valid" in wrong.content.decode()
    response = client.post(
        STEP_UP, {"factor": "totp", "code": code_now(seed), "next": "/sensitive/"}
    )

    assert response["Location"] == "/sensitive/"
    assert client.get("/sensitive/").content == b"sensitive"
    again = client.post(STEP_UP, {"factor": "totp", "code": code_now(seed)})
    assert "That code is not valid" in again.content.decode()  # single use


# Removing a factor: step-up, notification, other sessions end (R60, R61).


def test_removing_a_device_asks_for_a_factor_again_then_ends_other_sessions(
    client, make_user, mailoutbox
):
    user = make_user(email="alice@example.org")
    mail_device = Device.objects.get(user=user, phone_number="")
    Device.objects.filter(user=user, email="").update(last_used_at="2030-01-01T00:00:00Z")
    login_fully(client)
    other = Client()
    login_fully(other)
    assert is_logged_in(other)
    make_stale(client, user)

    asked = client.post(f"/account/devices/{mail_device.pk}/remove/")
    assert asked["Location"].startswith(STEP_UP)
    assert Device.objects.filter(pk=mail_device.pk).exists()
    make_fresh(client, user)
    client.post(f"/account/devices/{mail_device.pk}/remove/")

    assert not Device.objects.filter(pk=mail_device.pk).exists()
    assert is_logged_in(client)
    assert not is_logged_in(other)
    assert other.get("/private/")["Location"].startswith("/account/login/")
    sent = notifications("sign-in method was removed")
    assert len(sent) == 1
    assert sent[0].to == ["alice@example.com"]  # the removed inbox is not told
    assert "a••••@example.org" in sent[0].body and "alice@example.org" not in sent[0].body


def test_another_users_sessions_are_untouched(client, user, make_user):
    make_user("bob", phone="+233201234567")
    bob = Client()
    login_fully(bob, "bob")
    login_fully(client)

    epoch.advance(user, reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)

    assert not is_logged_in(client)
    assert is_logged_in(bob)


def test_a_session_verified_after_the_revocation_stays(client, user, clock):
    epoch.advance(user, reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)
    clock.shift(1)

    login_fully(client)

    assert is_logged_in(client)


def test_the_sign_out_everywhere_else_button(client, user):
    other = Client()
    login_fully(other)
    login_fully(client)

    response = client.post("/account/sessions/end-others/")

    assert response["Location"] == DEVICES
    assert is_logged_in(client)
    assert not is_logged_in(other)
    assert SecurityEpoch.objects.get(user=user).reason == epoch.Reason.SIGNED_OUT_EVERYWHERE


def test_the_epoch_check_costs_no_epoch_query_even_after_another_users_change(
    client, user, make_user
):
    make_user("bob", phone="+233201234567")
    login_fully(client)
    client.get("/private/")

    with CaptureQueriesContext(connection) as quiet:
        client.get("/private/")
    bob = Client()
    login_fully(bob, "bob")
    epoch.advance(bob_user(), reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)
    with CaptureQueriesContext(connection) as after:
        assert client.get("/private/").status_code == 200
    with CaptureQueriesContext(connection) as settled:
        client.get("/private/")

    tables = [q["sql"] for q in after.captured_queries if "otp_auth_securityepoch" in q["sql"]]
    assert not any("otp_auth_securityepoch" in q["sql"] for q in quiet.captured_queries)
    assert tables == []  # alice's epoch comes from the cache
    assert len(settled) == len(quiet)


def bob_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="bob")


# Adding factors is notified too (R60).


def test_confirming_a_sent_code_device_notifies(client, user, mailoutbox):
    login_fully(client)
    client.post("/account/devices/add/", {"channel": "sms", "destination": "0201234567"})
    client.post("/account/devices/confirm/", {"code": last_code()})

    assert Device.objects.filter(user=user, confirmed=True).count() == 2
    sent = notifications("sign-in method was added")
    assert len(sent) == 1
    assert "••••4567" in sent[0].body
    assert "0201234567" not in sent[0].body


# The password change, behind a fresh factor.


def test_the_password_change_needs_a_fresh_factor_and_notifies(client, user, mailoutbox):
    login_fully(client)
    other = Client()
    login_fully(other)
    make_stale(client, user)

    asked = client.get(PASSWORD_CHANGE)
    assert asked["Location"].startswith(STEP_UP)
    make_fresh(client, user)
    assert client.get(PASSWORD_CHANGE).status_code == 200
    response = client.post(
        PASSWORD_CHANGE,
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase 2fa",
            "new_password2": "a brand new passphrase 2fa",
        },
    )

    assert response["Location"] == DEVICES
    user.refresh_from_db()
    assert user.check_password("a brand new passphrase 2fa")
    assert is_logged_in(client)
    assert not is_logged_in(other)
    assert len(notifications("password was changed")) == 1


def test_a_wrong_old_password_changes_nothing(client, user, mailoutbox):
    login_fully(client)

    response = client.post(
        PASSWORD_CHANGE,
        {
            "old_password": wrong_code("123456"),
            "new_password1": "x" * 20,
            "new_password2": "x" * 20,
        },
    )

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert notifications("password") == []


# R59: every state-changing page takes POST only, with a CSRF token.


@pytest.mark.parametrize(
    "url, data",
    [
        ("/account/authenticator/add/", {"code": "123456"}),
        ("/account/authenticator/{app}/remove/", {}),
        ("/account/recovery-codes/", {}),
        ("/account/browsers/forget/", {}),
        ("/account/browsers/1/forget/", {}),
        ("/account/sessions/end-others/", {}),
        ("/account/password/", {"old_password": PASSWORD}),
        ("/account/login/switch/", {"factor": "recovery"}),
    ],
)
def test_posts_without_a_csrf_token_are_refused(client, user, url, data):
    app, _seed = add_authenticator(user)
    recovery.generate_codes(user)
    Device.objects.filter(user=user).update(last_used_at=timezone.now())  # the default
    login_fully(client)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies

    response = strict.post(url.format(app=app.pk), data)

    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content
    assert TOTPDevice.objects.filter(pk=app.pk).exists()
    assert recovery.remaining_codes(user) == 10
    assert is_logged_in(client)


@pytest.mark.parametrize(
    "url",
    [
        "/account/authenticator/1/remove/",
        "/account/browsers/forget/",
        "/account/browsers/1/forget/",
        "/account/sessions/end-others/",
    ],
)
def test_state_changing_urls_refuse_get(client, user, url):
    login_fully(client)

    assert client.get(url).status_code == 405
