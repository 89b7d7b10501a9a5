"""What the verify step issues, and what ``IsOTPVerified`` accepts (R66, R67, R54)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rest_framework")

from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from rest_framework.authentication import BaseAuthentication  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIClient, APIRequestFactory  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from otp_auth.api.credentials import (  # noqa: E402
    epoch_claim,
    is_verified_token_key,
    make_verified_token_key,
)
from otp_auth.api.permissions import IsOTPVerified, IsOTPVerifiedIfConfigured  # noqa: E402
from tests.api.conftest import (  # noqa: E402
    DEVICES,
    ME,
    log_in,
    password_step,
    start,
    verify,
)
from tests.conftest import PASSWORD, last_code  # noqa: E402

pytestmark = pytest.mark.django_db

PROTECTED = [("get", ME), ("get", DEVICES), ("post", "/api/step-up/")]


def test_a_token_obtained_without_the_second_factor_is_refused(api, user):
    # R67: a stock DRF token (as obtain_auth_token, the admin or a shell would make).
    token = Token.objects.create(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    for method, url in PROTECTED:
        response = getattr(api, method)(url)
        assert response.status_code == 403, url
        assert response.json() == {"code": "otp_required", "detail": "Second factor required."}


def test_the_challenge_and_basic_auth_are_not_credentials(api, user):
    # R67: the login challenge is no token, and a password alone (Basic) is not enough.
    challenge = start(api)
    api.credentials(HTTP_AUTHORIZATION=f"Token {challenge}")
    assert api.get(ME).status_code == 401
    api.credentials()
    assert api.get(ME).status_code == 401
    assert api.get(ME)["WWW-Authenticate"] == "Token"


def test_a_verified_login_replaces_a_token_made_elsewhere(api, user):
    old = Token.objects.create(user=user).key
    new = log_in(api)
    assert new != old and not Token.objects.filter(key=old).exists()
    assert api.get(ME).status_code == 200


def test_a_password_only_login_never_receives_a_verified_key(api, user):
    # A user whose devices are gone logs in with a password: the verified key is replaced.
    verified = log_in(api)
    user.otp_devices.all().delete()
    api.credentials()
    body = password_step(api).json()
    assert body["verified"] is False and body["token"] != verified
    assert not is_verified_token_key(body["token"], user.pk)


def test_verified_keys_are_bound_to_the_user_and_the_secret_key(user, make_user):
    bob = make_user("bob", phone=None)
    key = make_verified_token_key(user)
    assert len(key) == 40
    assert is_verified_token_key(key, user.pk)
    assert not is_verified_token_key(key, bob.pk)
    assert not is_verified_token_key(key[:-1] + ("A" if key[-1] != "A" else "B"), user.pk)
    with override_settings(SECRET_KEY="rotated-" + "x" * 50):
        assert not is_verified_token_key(key, user.pk)
    with override_settings(SECRET_KEY="rotated-" + "x" * 50, SECRET_KEY_FALLBACKS=[_secret_key()]):
        assert is_verified_token_key(key, user.pk)


def _secret_key() -> str:
    from django.conf import settings

    return str(settings.SECRET_KEY)


@override_settings(OTP_AUTH_API_CREDENTIAL="session")
def test_session_credential_logs_in_with_a_new_key_and_marks_it_verified(user):
    api = APIClient(enforce_csrf_checks=True)
    csrf = api.get("/api/csrf/").json()["csrf_token"]
    api.cookies["sessionid"] = "attacker-fixed-id"
    response = api.post(
        "/api/login/",
        {"username": "alice", "password": PASSWORD},
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 202
    # The pending login is not kept in a session: the fixed id is only cleared.
    assert response.cookies["sessionid"].value == ""
    response = api.post(
        "/api/login/verify/",
        {"challenge": response.json()["challenge"], "code": last_code()},
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["credential"] == "session" and body["verified"] is True
    assert "token" not in body
    assert api.cookies["sessionid"].value not in ("", "attacker-fixed-id")
    assert api.session["_otp_auth_verified"]["user"] == str(user.pk)
    # The session is what authenticates now, on the API and the HTML pages alike.
    assert api.get(ME).status_code == 200
    html = Client()
    html.cookies = api.cookies
    assert html.get("/strict/").content == b"strict"


@override_settings(OTP_AUTH_API_CREDENTIAL="session")
def test_session_credential_rotates_a_session_already_logged_in_as_the_user(user):
    # R54: a session logged in by the password alone elsewhere gains the second factor
    # through the API and gets a new key.
    api = APIClient()
    api.post("/plain-login/", {"username": "alice", "password": PASSWORD}, format="multipart")
    before = api.cookies["sessionid"].value
    response = verify(api, start(api))
    assert response.status_code == 200
    assert api.cookies["sessionid"].value != before
    assert api.get(ME).status_code == 200


def issue_claims(*, request: Any, user: Any, verified: bool, factor: str) -> dict[str, Any]:
    """A stand-in for a JWT issuer: claims the test authentication below reads back."""
    amr = ["pwd", "mfa"] if verified else ["pwd"]
    return {"access": f"{user.pk}:{','.join(amr)}:{epoch_claim(user)}"}


class ClaimsAuthentication(BaseAuthentication):
    """Reads the stand-in JWT: ``<user pk>:<amr,...>:<otp_epoch>``; ``request.auth`` is
    the claims."""

    def authenticate(self, request: Any) -> Any:
        from django.contrib.auth import get_user_model

        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        pk, amr, otp_epoch = (header.removeprefix("Bearer ").split(":") + ["", ""])[:3]
        claims = {"amr": amr.split(","), "otp_epoch": int(otp_epoch) if otp_epoch else None}
        return get_user_model().objects.get(pk=pk), claims


@override_settings(OTP_AUTH_API_CREDENTIAL="tests.api.test_credentials.issue_claims")
def test_a_custom_issuer_adds_its_fields_and_amr_mfa_is_verified(api, user):
    response = verify(api, start(api))
    body = response.json()
    assert (
        body["credential"] == "custom"
        and body["access"] == f"{user.pk}:pwd,mfa:{epoch_claim(user)}"
    )
    assert not Token.objects.exists()

    class Protected(APIView):
        authentication_classes = [ClaimsAuthentication]
        permission_classes = [IsOTPVerified]

        def get(self, request: Any) -> Response:
            return Response("ok")

    view = Protected.as_view()
    factory = APIRequestFactory()
    assert view(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {body['access']}")).data == "ok"
    password_only = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {user.pk}:pwd")
    assert view(password_only).status_code == 403
    without_epoch = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {user.pk}:pwd,mfa")
    assert view(without_epoch).status_code == 403

    # A change to the account (here a password change) ends the claims as well.
    user.set_password("a new password 8472")
    user.save()
    assert view(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {body['access']}")).status_code == 403


@override_settings(OTP_AUTH_API_CREDENTIAL="tests.api.test_credentials.missing_issuer")
def test_a_missing_issuer_is_a_configuration_error(api, user):
    from django.core.exceptions import ImproperlyConfigured

    challenge = start(api)
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        verify(api, challenge)


def test_if_configured_lets_users_without_a_device_through(make_user):
    class View(APIView):
        permission_classes = [IsOTPVerifiedIfConfigured]

        def get(self, request: Any) -> Response:
            return Response("ok")

    factory = APIRequestFactory()
    without = make_user("dave", phone=None)
    with_device = make_user("erin", phone="+233201234567")
    for user, expected in ((without, 200), (with_device, 403)):
        request = factory.get("/")
        request.user = user
        request._force_auth_user = user
        from rest_framework.test import force_authenticate

        force_authenticate(request, user=user)
        assert View.as_view()(request).status_code == expected
    with override_settings(OTP_AUTH_REQUIRE_ENROLLMENT=True):
        request = factory.get("/")
        force_authenticate(request, user=without)
        assert View.as_view()(request).status_code == 403
    request = factory.get("/")
    request.user = AnonymousUser()
    assert View.as_view()(request).status_code in (401, 403)


def test_logout_deletes_the_token(api, user):
    token = log_in(api)
    assert api.post("/api/logout/").status_code == 204
    assert not Token.objects.filter(key=token).exists()
    assert api.get(ME).status_code == 401
