"""``OTPMiddleware``: ``is_verified()``, enforcement, exemptions, admin, ASGI and setup."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path

from otp_auth.constants import Purpose
from tests.conftest import PASSWORD, last_code, login_fully, otp_settings, password_step
from tests.urls import urlpatterns as base_urlpatterns

pytestmark = pytest.mark.django_db

OTP_MIDDLEWARE = "otp_auth.middleware.OTPMiddleware"
VERIFY = "/account/login/verify/"


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"ok {request.user.get_username()}")


urlpatterns = [
    *base_urlpatterns,
    path("static/app.css", ok, name="static_file"),
    path("open/page/", ok, name="open_page"),
    path("by-name/", ok, name="by_name"),
    path("closed/", ok, name="closed"),
]
with_extra_urls = pytest.mark.urls(__name__)


def plain_login(client: Client, username: str = "alice") -> None:
    """Password only, through Django's own LoginView: no second factor yet."""
    response = client.post("/plain-login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# request.user.is_verified()


def test_is_verified_after_the_code_step(client, user):
    login_fully(client)

    response = client.get("/private/")

    assert response.status_code == 200
    assert response.wsgi_request.user.is_verified() is True


def test_is_not_verified_for_a_password_only_session(client, user):
    plain_login(client)

    response = client.get("/account/login/")

    assert response.wsgi_request.user.is_authenticated
    assert response.wsgi_request.user.is_verified() is False


def test_is_not_verified_for_anonymous(client):
    response = client.get("/public/")

    assert response.wsgi_request.user.is_verified() is False


def test_a_verified_session_costs_no_extra_query(client, user, django_assert_num_queries):
    login_fully(client)
    client.get("/private/")
    without = [m for m in settings.MIDDLEWARE if m != OTP_MIDDLEWARE]

    with override_settings(MIDDLEWARE=without), CaptureQueriesContext(connection) as plain:
        assert client.get("/private/").status_code == 200
    with django_assert_num_queries(len(plain)):
        assert client.get("/private/").status_code == 200


# Enforcement for sessions logged in without the second factor.


def test_unverified_session_is_sent_to_verify_and_can_finish_there(client, user, outbox):
    plain_login(client)
    before = session_key(client)

    refused = client.get("/private/")
    assert refused.status_code == 302
    assert refused["Location"] == f"{VERIFY}?next=%2Fprivate%2F"
    assert outbox == []

    resumed = client.get(refused["Location"])

    assert resumed.status_code == 302
    assert len(outbox) == 1
    assert outbox[0].purpose == Purpose.LOGIN
    assert "••••4567" in client.get(VERIFY).content.decode()

    done = client.post(VERIFY, {"code": last_code()})

    assert done["Location"] == "/private/"
    assert client.get("/private/").content == b"private alice"
    assert session_key(client) != before
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stale.get("/private/").status_code == 302


def test_unverified_session_gets_a_json_403_on_post(client, user):
    plain_login(client)

    response = client.post("/private/")

    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"


@with_extra_urls
def test_exempt_url_names(client, user):
    plain_login(client)

    assert client.get("/by-name/").status_code == 302
    with otp_settings(EXEMPT_URL_NAMES=["by_name"]):
        assert client.get("/by-name/").content == b"ok alice"
        assert client.get("/closed/").status_code == 302


@with_extra_urls
def test_exempt_paths(client, user):
    plain_login(client)

    assert client.get("/open/page/").status_code == 302
    with otp_settings(EXEMPT_PATHS=["/open/"]):
        assert client.get("/open/page/").content == b"ok alice"
        assert client.post("/open/page/").content == b"ok alice"
        assert client.get("/closed/").status_code == 302


@with_extra_urls
def test_static_url_is_exempt(client, user):
    plain_login(client)

    assert client.get("/static/app.css").content == b"ok alice"
    with override_settings(STATIC_URL="/assets/"):
        assert client.get("/static/app.css").status_code == 302


def test_enforce_false_disables_enforcement(client, user):
    plain_login(client)

    with otp_settings(ENFORCE=False):
        assert client.get("/private/").content == b"private alice"
        assert client.post("/private/").status_code == 200


# Admin.


def test_admin_login_sends_anonymous_users_to_the_two_step_login(client):
    response = client.get("/admin/login/")
    with_next = client.get("/admin/login/", {"next": "/admin/auth/user/"})
    unsafe = client.get("/admin/login/", {"next": "https://evil.example/"})

    assert response.status_code == 302
    assert response["Location"] == "/account/login/?next=%2Fadmin%2F"
    assert with_next["Location"] == "/account/login/?next=%2Fadmin%2Fauth%2Fuser%2F"
    assert unsafe["Location"] == "/account/login/?next=%2Fadmin%2F"


def test_admin_login_redirect_can_be_turned_off(client):
    with otp_settings(ADMIN_LOGIN_REDIRECT=False):
        response = client.get("/admin/login/")

    assert response.status_code == 200


def test_staff_without_a_device_must_enroll_before_the_admin(client, make_user):
    make_user("boss", phone=None, is_staff=True, is_superuser=True)
    password_step(client, "boss")

    admin = client.get("/admin/")
    elsewhere = client.get("/private/")
    enroll = client.get("/account/devices/add/")

    assert admin.status_code == 302
    assert admin["Location"] == "/account/devices/add/?next=%2Fadmin%2F"
    assert elsewhere.content == b"private boss"
    assert enroll.status_code == 200


def test_staff_with_a_device_reaches_the_admin_after_the_code(client, make_user):
    make_user("boss", is_staff=True, is_superuser=True)
    password_step(client, "boss")
    before = client.get("/admin/", follow=True)
    assert before.redirect_chain[-1][0] == "/account/login/?next=%2Fadmin%2F"

    client.post(VERIFY, {"code": last_code()})

    assert client.get("/admin/").status_code == 200


# ASGI.


def _async_get(client: Client, url: str):
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    return async_to_sync(async_client.get)(url)


def test_asgi_verified_session_passes(client, user):
    login_fully(client)

    response = _async_get(client, "/private/")

    assert response.status_code == 200
    assert response.content == b"private alice"
    assert response.asgi_request.user.is_verified() is True


def test_asgi_unverified_session_is_refused(client, user):
    plain_login(client)

    response = _async_get(client, "/private/")

    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY}?next=%2Fprivate%2F"


def test_asgi_anonymous_is_not_verified(client):
    response = _async_get(client, "/public/")

    assert response.content == b"public"
    assert response.asgi_request.user.is_verified() is False


# Configuration.


@pytest.mark.parametrize(
    "chain",
    [
        [OTP_MIDDLEWARE],
        [
            OTP_MIDDLEWARE,
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
    ],
    ids=["alone", "before-session"],
)
def test_missing_session_middleware_is_a_configuration_error(client, chain):
    with override_settings(MIDDLEWARE=chain), pytest.raises(ImproperlyConfigured, match="after"):
        client.get("/public/")
