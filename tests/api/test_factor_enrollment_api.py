"""API parity: security keys and passkeys, authenticator apps and recovery codes, all
under the factor-change policy; the login step and passkey sign-in with a key."""

from __future__ import annotations

from typing import Any

import pytest

from otp_auth import totp as otp
from otp_auth.encryption import decrypt_seed
from otp_auth.models import TOTPDevice, WebAuthnCredential
from tests.api.conftest import log_in, start
from tests.conftest import otp_settings
from tests.webauthn_authenticator import SoftAuthenticator

pytest.importorskip("rest_framework")
pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _on() -> Any:
    with otp_settings(WEBAUTHN=True, PASSKEY_LOGIN=True):
        yield


def _register_key(api: Any, key: SoftAuthenticator, **extra: Any) -> Any:
    started = api.post("/api/webauthn/register/options/", {"passkey": True, **extra}, format="json")
    assert started.status_code == 200, started.content
    body = started.json()
    return api.post(
        "/api/webauthn/register/",
        {"ceremony": body["ceremony"], "credential": key.create(body["publicKey"]), "name": "K"},
        format="json",
    )


def test_a_token_needs_a_step_up_to_register_a_key(api, user):
    log_in(api)
    response = api.post("/api/webauthn/register/options/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "step_up_required"


def test_register_a_key_then_log_in_and_sign_in_with_it(api, user, make_user):
    from rest_framework.test import APIClient

    fresh = make_user("bob", phone=None)  # no factor yet: the first one needs no step-up
    api.post("/api/login/", {"username": "bob", "password": "correct horse battery staple"})
    token = api.post(
        "/api/login/", {"username": "bob", "password": "correct horse battery staple"}
    ).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    key = SoftAuthenticator()
    response = _register_key(api, key)
    assert response.status_code == 201, response.content
    assert response.json()["credential"]["verified"] is True
    assert WebAuthnCredential.objects.get().user == fresh

    login = APIClient()
    challenge = start(login, "bob")
    options = login.post("/api/login/webauthn/options/", {"challenge": challenge}).json()
    answer = key.get(options["publicKey"])
    done = login.post(
        "/api/login/webauthn/",
        {"challenge": challenge, "ceremony": options["ceremony"], "credential": answer},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert done.json()["verified"] is True
    # The login challenge is spent.
    again = login.post("/api/login/webauthn/options/", {"challenge": challenge})
    assert again.status_code == 401

    passkey = APIClient()
    options = passkey.post("/api/passkey/options/").json()
    done = passkey.post(
        "/api/passkey/login/",
        {"ceremony": options["ceremony"], "credential": key.get(options["publicKey"])},
        format="json",
    )
    assert done.status_code == 200 and done.json()["user"]["username"] == "bob"
    refused = passkey.post(
        "/api/passkey/login/",
        {"ceremony": options["ceremony"], "credential": key.get(options["publicKey"])},
        format="json",
    )
    assert refused.status_code == 401 and refused.json()["code"] == "webauthn_refused"


def test_authenticator_app_enrollment_list_and_removal(api, user, clock):
    log_in(api)  # a session-free token: every change needs a step_up proof
    assert api.post("/api/authenticators/", {}, format="json").status_code == 403
    step = api.post("/api/step-up/", {}, format="json").json()
    from tests.conftest import last_code

    proof = {"challenge": step["challenge"], "code": last_code()}
    created = api.post("/api/authenticators/", {"step_up": proof}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["uri"].startswith("otpauth://totp/") and body["qr_svg"].startswith("<svg")
    device = TOTPDevice.objects.get(pk=body["id"])
    seed = decrypt_seed(device.encrypted_seed)
    code = otp.totp(seed, clock_now(), digits=6, period=30, algorithm="sha1")
    confirmed = api.post("/api/authenticators/confirm/", {"id": body["id"], "code": code})
    assert confirmed.status_code == 200, confirmed.content
    listed = api.get("/api/authenticators/").json()
    assert [a["id"] for a in listed] == [body["id"]]
    assert (
        api.post(f"/api/authenticators/{body['id']}/remove/", {}, format="json").status_code == 403
    )


def clock_now() -> float:
    import time

    return time.time()


def test_recovery_codes_count_tells_never_from_none_left(api, user):
    log_in(api)
    assert api.get("/api/recovery-codes/").json() == {
        "generated": False,
        "remaining": 0,
        "total": 0,
        "generated_at": None,
    }
    assert api.post("/api/recovery-codes/", {}, format="json").status_code == 403
