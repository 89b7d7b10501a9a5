"""CSRF on the API (R59): DRF checks it only for requests already logged in by session;
the anonymous login steps are checked here whenever a session is involved."""

from __future__ import annotations

import pytest

pytest.importorskip("rest_framework")

from django.test import override_settings  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from otp_auth.models import Challenge  # noqa: E402
from tests.api.conftest import CANCEL, LOGIN, RESEND, SWITCH, VERIFY  # noqa: E402
from tests.conftest import PASSWORD, last_code  # noqa: E402

pytestmark = pytest.mark.django_db

CREDENTIALS = {"username": "alice", "password": PASSWORD}


def strict_client() -> APIClient:
    return APIClient(enforce_csrf_checks=True)


@override_settings(OTP_AUTH_API_CREDENTIAL="session")
@pytest.mark.parametrize("url", [LOGIN, VERIFY, RESEND, SWITCH, CANCEL])
def test_session_credential_checks_csrf_on_every_anonymous_step(user, url):
    api = strict_client()
    response = api.post(url, {**CREDENTIALS, "challenge": "x", "code": "1", "device": 1})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert not Challenge.objects.exists()


@override_settings(OTP_AUTH_API_CREDENTIAL="session")
def test_session_credential_login_with_the_csrf_token_works(user):
    api = strict_client()
    token = api.get("/api/csrf/").json()["csrf_token"]
    challenge = api.post(LOGIN, CREDENTIALS, HTTP_X_CSRFTOKEN=token).json()["challenge"]
    response = api.post(
        VERIFY, {"challenge": challenge, "code": last_code()}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200
    # Logged in by session now: DRF's own check applies, with the rotated token.
    assert api.post("/api/step-up/").json()["code"] == "csrf_failed"
    rotated = api.cookies["csrftoken"].value
    assert api.post("/api/step-up/", HTTP_X_CSRFTOKEN=rotated).status_code == 202


def test_token_clients_without_cookies_need_no_csrf_token(user):
    api = strict_client()
    assert api.post(LOGIN, CREDENTIALS).status_code == 202


def test_a_request_carrying_a_session_cookie_is_checked_in_token_mode_too(user):
    api = strict_client()
    api.cookies["sessionid"] = "whatever"
    response = api.post(LOGIN, CREDENTIALS)
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"


def test_a_password_only_session_may_still_use_the_api_login(user):
    # The middleware lets a session logged in by the password alone reach the API's login
    # steps (as it does the HTML ones), and refuses it everywhere else.
    api = APIClient()
    api.post("/plain-login/", CREDENTIALS, format="multipart")
    assert api.post("/api/step-up/").json()["code"] == "otp_required"
    assert api.post(LOGIN, CREDENTIALS).status_code == 202
