"""Devices over the API: list, add, confirm, remove; step-up for sensitive changes
(R17, R29, R60, R62, R72)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rest_framework")

from django.test import override_settings  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from otp_auth.api.credentials import is_verified_token_key  # noqa: E402
from otp_auth.constants import ChallengeStatus, Purpose  # noqa: E402
from otp_auth.models import Challenge, Device  # noqa: E402
from tests.api.conftest import (  # noqa: E402
    CONFIRM,
    DEVICES,
    ME,
    STEP_UP,
    log_in,
    password_step,
    start,
    verify,
    with_email_device,
    wrong,
)
from tests.conftest import PASSWORD, last_code  # noqa: E402

pytestmark = pytest.mark.django_db

NEW_PHONE = {"channel": "sms", "destination": "+233 20 765 4321", "name": "Work"}


def step_up(api, **body):
    response = api.post(STEP_UP, body)
    assert response.status_code == 202, response.content
    return {"challenge": response.json()["challenge"], "code": last_code()}


def test_list_shows_masked_confirmed_devices(api, make_user):
    user = make_user()
    Device.objects.create(user=user, email="x@example.com", channels=["email"])  # unconfirmed
    log_in(api)
    devices = api.get(DEVICES).json()
    assert [(d["destination"], d["channels"]) for d in devices] == [("••••4567", ["sms", "voice"])]
    assert "+233" not in str(devices)


def test_adding_a_device_needs_a_fresh_factor_from_a_token(api, user, outbox):
    # R60, R72: a verified token alone is not proof of presence.
    log_in(api)
    refused = api.post(DEVICES, NEW_PHONE)
    assert refused.status_code == 403
    assert refused.json()["code"] == "step_up_required"
    assert Device.objects.count() == 1

    proof = step_up(api)
    response = api.post(DEVICES, {**NEW_PHONE, "step_up": proof})

    assert response.status_code == 202
    body = response.json()
    assert body["destination"] == "••••4321" and body["device"]["name"] == "Work"
    assert outbox[-1].destination == "+233207654321"
    device = Device.objects.get(phone_number="+233207654321")
    assert device.confirmed is False  # R62: not usable before its code comes back

    confirmed = api.post(CONFIRM, {"challenge": body["challenge"], "code": last_code()})
    assert confirmed.status_code == 200
    assert confirmed.json()["credential"] is None  # the token was verified already
    device.refresh_from_db()
    assert device.confirmed is True
    # The step-up code was used up by the first request.
    assert api.post(DEVICES, {**NEW_PHONE, "step_up": proof}).json()["code"] == "invalid_code"


def test_an_invalid_destination_does_not_spend_the_step_up_code(api, user):
    log_in(api)
    proof = step_up(api)
    response = api.post(DEVICES, {"channel": "sms", "destination": "12", "step_up": proof})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_destination"
    assert Challenge.objects.get(purpose=Purpose.STEP_UP).status == ChallengeStatus.PENDING


@override_settings(OTP_AUTH_ALLOWED_COUNTRIES=["GH"])
def test_a_number_from_a_country_not_allowed_gets_no_message(api, make_user, outbox):
    # R17: checked before anything is sent.
    make_user(phone=None)
    api.credentials(HTTP_AUTHORIZATION=f"Token {password_step(api).json()['token']}")
    response = api.post(DEVICES, {"channel": "sms", "destination": "+1 202 555 0143"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_destination"
    assert outbox == []


def test_first_device_needs_no_step_up_and_upgrades_the_credential(api, make_user):
    user = make_user(phone=None)
    token = password_step(api).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(ME).status_code == 403

    body = api.post(DEVICES, NEW_PHONE).json()
    response = api.post(CONFIRM, {"challenge": body["challenge"], "code": last_code()})

    assert response.status_code == 200
    credential = response.json()["credential"]
    assert credential["verified"] is True and credential["token"] != token
    assert is_verified_token_key(credential["token"], user.pk)
    assert not Token.objects.filter(key=token).exists()
    api.credentials(HTTP_AUTHORIZATION=f"Token {credential['token']}")
    assert api.get(ME).status_code == 200


def test_confirm_refuses_a_wrong_code_with_400_and_locks(api, make_user):
    # A signed-in caller's credential is fine: a refused code is a 400, not a 401.
    make_user(phone=None)
    api.credentials(HTTP_AUTHORIZATION=f"Token {password_step(api).json()['token']}")
    body = api.post(DEVICES, NEW_PHONE).json()
    code = last_code()
    answers = [
        api.post(CONFIRM, {"challenge": body["challenge"], "code": wrong(code)}) for _ in range(5)
    ]
    assert {a.status_code for a in answers} == {400}
    assert answers[-1].json()["code"] == "challenge_locked"
    assert api.post(CONFIRM, {"challenge": body["challenge"], "code": code}).status_code == 400
    assert not Device.objects.get().confirmed


def test_codes_are_bound_to_their_purpose(api, user, make_user):
    # R29: a login challenge confirms no device; a step-up code is no enrollment code.
    log_in(api)
    proof = step_up(api)
    response = api.post(CONFIRM, proof)
    assert response.json()["code"] == "invalid_code"
    assert Challenge.objects.get(purpose=Purpose.STEP_UP).attempts == 0


def test_removing_needs_a_fresh_factor(api, make_user):
    # R60, R72.
    user = with_email_device(make_user)
    log_in(api)
    mail = Device.objects.get(user=user, phone_number="")
    url = f"/api/devices/{mail.pk}/remove/"

    refused = api.post(url)
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"

    wrong_proof = step_up(api)
    wrong_proof["code"] = wrong(wrong_proof["code"])
    assert api.post(url, {"step_up": wrong_proof}).json()["code"] == "invalid_code"

    assert api.post(url, {"step_up": step_up(api)}).status_code == 204
    assert not Device.objects.filter(pk=mail.pk).exists()


def test_a_session_with_a_recent_second_factor_removes_without_a_code(make_user):
    from rest_framework.test import APIClient

    user = with_email_device(make_user)
    mail = Device.objects.get(user=user, phone_number="")
    with override_settings(OTP_AUTH_API_CREDENTIAL="session"):
        api = APIClient()
        verify(api, start(api))
        assert api.post(f"/api/devices/{mail.pk}/remove/").status_code == 204
        session = api.session
        session["_otp_auth_step_up"] = {"user": str(user.pk), "at": int(time.time()) - 301}
        session.save()
        phone = Device.objects.get(user=user)
        refused = api.post(f"/api/devices/{phone.pk}/remove/")
        assert refused.json()["code"] == "step_up_required"


@pytest.mark.parametrize("pk", ["999", "0", "99999999999999999999999", "x1", "%C2%B2"])
def test_removing_an_unknown_device_is_a_json_404(api, user, make_user, pk):
    other = make_user("bob", phone="+233201234567")
    log_in(api)
    for target in (pk, str(Device.objects.get(user=other).pk)):
        response = api.post(f"/api/devices/{target}/remove/", {"step_up": step_up(api)})
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert Device.objects.count() == 2


def test_step_up_needs_a_verified_credential_and_a_known_device(api, user):
    Token.objects.create(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get().key}")
    assert api.post(STEP_UP).json()["code"] == "otp_required"
    api.credentials()
    log_in(api)
    response = api.post(STEP_UP, {"device": 999})
    assert response.status_code == 400 and response.json()["code"] == "device_error"


def test_a_new_step_up_code_replaces_the_previous_one(api, user):
    log_in(api)
    first = step_up(api)
    step_up(api)
    assert Challenge.objects.get(public_id=first["challenge"]).status == ChallengeStatus.CANCELLED


def test_an_unverified_user_with_a_device_cannot_manage_devices(api, user):
    # Password-only sessions of users with a device are refused (R53).
    from rest_framework.test import APIClient

    client = APIClient()
    client.post("/plain-login/", {"username": "alice", "password": PASSWORD}, format="multipart")
    assert client.get(DEVICES).status_code in (302, 403)
    response = client.post(DEVICES, NEW_PHONE)
    assert response.status_code == 403
