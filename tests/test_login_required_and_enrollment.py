"""Django's LoginRequiredMiddleware, and enrollment that brings the user back where they
were going, with a way out for those sent there."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.conftest import last_code, otp_settings, password_step

pytestmark = pytest.mark.django_db

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"
WITH_LOGIN_REQUIRED = [*settings.MIDDLEWARE]
WITH_LOGIN_REQUIRED.insert(
    WITH_LOGIN_REQUIRED.index("otp_auth.middleware.OTPMiddleware"), LOGIN_REQUIRED
)


@pytest.fixture
def login_required_site() -> Any:
    with override_settings(MIDDLEWARE=WITH_LOGIN_REQUIRED):
        yield


def test_the_whole_html_login_works_under_login_required_middleware(
    login_required_site, client, user
):
    assert client.get("/account/login/").status_code == 200
    assert password_step(client)["Location"] == "/account/login/verify/"
    assert client.get("/account/login/verify/").status_code == 200
    resend = client.post("/account/login/resend/")
    assert resend["Location"] == "/account/login/verify/"
    switched = client.post("/account/login/switch/", {"factor": "recovery"})
    assert switched["Location"] == "/account/login/verify/"
    cancelled = client.post("/account/login/cancel/")
    assert cancelled["Location"] == "/account/login/"
    assert password_step(client).status_code == 302
    done = client.post("/account/login/verify/", {"code": last_code()})
    assert done.status_code == 302 and not done["Location"].startswith("/account/login/")
    # Pages of a signed-in user stay behind the middleware for strangers.
    stranger = Client()
    assert stranger.get("/account/devices/")["Location"].startswith("/account/login/")


def test_the_password_reset_pages_work_under_login_required_middleware(
    login_required_site, client, user
):
    for page in ("/account/password-reset/", "/account/password-reset/code/"):
        response = client.get(page)
        assert response.status_code in (200, 302), page
        if response.status_code == 302:
            assert "?next=" not in response["Location"], page
    asked = client.post("/account/password-reset/", {"identifier": "alice"})
    assert asked["Location"] == "/account/password-reset/code/"
    assert client.get("/account/password-reset/code/").status_code == 200


def test_the_api_login_works_under_login_required_middleware(login_required_site, user):
    pytest.importorskip("rest_framework")
    from rest_framework.test import APIClient

    from tests.api.conftest import log_in

    api = APIClient()
    log_in(api)
    assert api.get("/api/me/").status_code == 200


def test_forced_enrollment_works_under_login_required_middleware(
    login_required_site, client, make_user
):
    make_user("newbie", phone=None)
    with otp_settings(REQUIRE_ENROLLMENT=True):
        assert password_step(client, "newbie").status_code == 302
        sent_to = client.get("/private/")["Location"]
        assert sent_to.startswith("/account/devices/add/")
        assert client.get(sent_to).status_code == 200


def _enroll_first_phone(client: Client, start: str) -> Any:
    page = client.get(start)
    assert page.status_code == 200
    added = client.post("/account/devices/add/", {"channel": "sms", "destination": "+233241234567"})
    assert added["Location"] == "/account/devices/confirm/"
    return client.post("/account/devices/confirm/", {"code": last_code()})


def test_next_survives_forced_enrollment(client, make_user):
    make_user("newbie", phone=None)
    with otp_settings(REQUIRE_ENROLLMENT=True):
        password_step(client, "newbie")
        sent_to = client.get("/private/?tab=2")["Location"]
        assert "next=" in sent_to
        confirmed = _enroll_first_phone(client, sent_to)
    assert confirmed["Location"] == "/private/?tab=2"
    assert client.get("/private/").status_code == 200


def test_next_survives_the_admins_enrollment(client, make_user):
    make_user("staffer", phone=None, is_staff=True, is_superuser=True)
    password_step(client, "staffer")
    sent_to = client.get("/admin/auth/user/")["Location"]
    assert sent_to.startswith("/account/devices/add/")
    confirmed = _enroll_first_phone(client, sent_to)
    assert confirmed["Location"] == "/admin/auth/user/"
    assert client.get("/admin/auth/user/").status_code == 200


def test_an_unsafe_next_is_dropped_at_enrollment(client, make_user):
    make_user("newbie", phone=None)
    password_step(client, "newbie")
    confirmed = _enroll_first_phone(client, "/account/devices/add/?next=https://evil.example/")
    assert confirmed["Location"] == "/account/devices/"


def test_a_user_sent_to_enroll_is_told_why_and_can_sign_out(client, make_user):
    make_user("staffer", phone=None, is_staff=True)
    password_step(client, "staffer")
    page = client.get(client.get("/admin/")["Location"])
    assert b"needs a second factor" in page.content
    assert b'action="/account/logout/"' in page.content
    signed_out = client.post("/account/logout/")
    assert signed_out.status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_user_adding_a_device_by_choice_sees_no_enrollment_notice(client, make_user):
    make_user("optional", phone=None)
    password_step(client, "optional")
    page = client.get("/account/devices/add/")
    assert b"needs a second factor" not in page.content


def test_the_device_page_says_sms_and_voice_are_weaker_and_offers_the_app(client, make_user):
    make_user("newbie", phone=None)
    password_step(client, "newbie")
    page = client.get("/account/devices/add/?next=/private/")
    assert b"weaker" in page.content
    assert b'href="/account/authenticator/add/?next=/private/"' in page.content
    with otp_settings(CHANNELS=["email"]):
        assert b"weaker" not in client.get("/account/devices/add/").content
