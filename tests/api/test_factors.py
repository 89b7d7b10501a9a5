"""API logins with an authenticator app or a recovery code: the same factors, services
and limits as the HTML login."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rest_framework")

from django.utils import timezone  # noqa: E402

from otp_auth import totp as otp  # noqa: E402
from otp_auth.constants import ChallengeStatus  # noqa: E402
from otp_auth.encryption import decrypt_seed  # noqa: E402
from otp_auth.models import Challenge, TOTPDevice  # noqa: E402
from otp_auth.services.recovery import generate_codes  # noqa: E402
from otp_auth.services.totp import create_device  # noqa: E402
from tests.api.conftest import ME, RESEND, SWITCH, password_step, verify, wrong  # noqa: E402
from tests.conftest import last_code  # noqa: E402

pytestmark = pytest.mark.django_db


def authenticator(user) -> TOTPDevice:
    device = create_device(user, name="App")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device


def app_code(device: TOTPDevice, at: float | None = None) -> str:
    return otp.totp(
        decrypt_seed(device.encrypted_seed),
        time.time() if at is None else at,
        period=device.period,
        digits=device.digits,
        algorithm=device.algorithm,
    )


def test_a_user_with_only_an_app_is_asked_for_its_code(api, make_user, outbox):
    # Never a password-only credential for a user whose second factor is an app.
    user = make_user(phone=None)
    device = authenticator(user)

    body = password_step(api).json()

    assert body["kind"] == "totp" and body["factor"] == f"totp:{device.pk}"
    assert body["channel"] is None and body["resends_left"] is None
    assert outbox == [] and not Challenge.objects.exists()
    assert api.post(RESEND, {"challenge": body["challenge"]}).json()["code"] == "device_error"
    response = verify(api, body["challenge"], app_code(device))
    assert response.status_code == 200 and response.json()["verified"] is True
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api.get(ME).status_code == 200


def test_an_app_code_is_single_use_and_the_flow_is_spent(api, make_user):
    user = make_user(phone=None)
    device = authenticator(user)
    challenge = password_step(api).json()["challenge"]
    code = app_code(device)
    assert verify(api, challenge, code).status_code == 200
    # The spent flow is refused, even with the next valid app code (R68).
    replay = verify(api, challenge, app_code(device, time.time() + 30))
    assert replay.status_code == 401 and replay.json()["code"] == "invalid_code"
    second = password_step(api).json()["challenge"]
    assert verify(api, second, code).json()["code"] == "invalid_code"  # used step


def test_switching_from_a_sent_code_to_the_app_sends_nothing(api, make_user, outbox):
    user = make_user()
    device = authenticator(user)
    user.otp_devices.update(last_used_at=timezone.now())  # the phone was used last
    body = password_step(api).json()
    assert body["kind"] == "code" and len(outbox) == 1
    app = next(f for f in body["factors"] if f["kind"] == "totp")

    switched = api.post(SWITCH, {"challenge": body["challenge"], "factor": app["key"]}).json()

    assert switched["kind"] == "totp" and len(outbox) == 1
    assert verify(api, switched["challenge"], app_code(device)).status_code == 200
    # The code sent earlier in the flow does not outlive it.
    assert Challenge.objects.get().status == ChallengeStatus.CANCELLED


def test_a_recovery_code_logs_in_once(api, make_user):
    user = make_user()
    codes = generate_codes(user)
    body = password_step(api).json()
    assert [f["key"] for f in body["factors"]] == ["recovery"]
    assert last_code()  # a code went to the phone; the user answers with a recovery code
    switched = api.post(SWITCH, {"challenge": body["challenge"], "factor": "recovery"}).json()
    assert switched["kind"] == "recovery"

    assert verify(api, switched["challenge"], codes[0]).status_code == 200
    again = password_step(api).json()
    again = api.post(SWITCH, {"challenge": again["challenge"], "factor": "recovery"}).json()
    assert verify(api, again["challenge"], codes[0]).json()["code"] == "invalid_code"


def test_an_app_code_is_a_step_up_proof(api, make_user):
    # The HTML step-up takes an app code too; so does the API's `step_up`.
    user = make_user()
    device = authenticator(user)
    TOTPDevice.objects.filter(pk=device.pk).update(last_used_at=None)
    user.otp_devices.update(last_used_at=timezone.now())
    body = password_step(api).json()
    token = verify(api, body["challenge"], last_code()).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    phone = user.otp_devices.get()
    url = f"/api/devices/{phone.pk}/remove/"

    refused = api.post(url, {"step_up": {"code": wrong(app_code(device))}})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_code"
    assert api.post(url, {"step_up": {"code": app_code(device)}}).status_code == 204
