"""R92 across the flows: password reset by code (pages and API), recovery codes, authenticator
setup and API flow tokens. Every log record of every logger at DEBUG, every ``otp_auth`` and
``django.contrib.auth`` signal's arguments, and the pages shown hold no code, seed,
password, grant or credential that they should not. Sending providers are covered by
tests/providers/test_no_secrets_in_logs.py; ``sensitive_post_parameters`` by
test_sensitive_views.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from otp_auth import totp as otp
from otp_auth.conf import app_settings
from otp_auth.models import Device, RecoveryCode, TOTPDevice
from otp_auth.password_reset_views import RESET_SESSION_KEY
from otp_auth.services import recovery
from tests.conftest import PASSWORD, last_code, login_fully, password_step, wrong_code
from tests.factor_helpers import (
    RECOVERY,
    SWITCH,
    TOTP_ADD,
    VERIFY,
    code_now,
    other_code,
    secret_from_page,
)
from tests.log_capture import Recorder, recording

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a fresh and long passphrase 42"


@pytest.fixture
def seen() -> Iterator[Recorder]:
    with recording() as recorder:
        yield recorder


@pytest.fixture
def alice(make_user: Any) -> Any:
    """A phone (used last) and an email device: two factors, as a reset needs."""
    user = make_user("alice", email="alice@mail.example")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def email_code() -> str:
    match = re.search(r"\b([0-9]{6})\b", mail.outbox[-1].body)
    assert match, "no code in the last email"
    return match.group(1)


def email_factor(user: Any) -> str:
    return f"device:{Device.objects.get(user=user, phone_number='').pk}"


def test_password_reset_pages(client, alice, seen):
    show = seen.response
    show(client.get("/account/password-reset/"))
    show(client.post("/account/password-reset/", {"identifier": "alice", "channel": ""}))
    reset_code = last_code()
    show(client.post("/account/password-reset/code/", {"code": wrong_code(reset_code)}))
    show(client.post("/account/password-reset/code/", {"code": reset_code}))
    grant = client.session[RESET_SESSION_KEY]["grant"]
    show(client.get("/account/password-reset/new/"))
    show(client.post("/account/password-reset/send/", {"factor": email_factor(alice)}))
    second = email_code()
    data = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    done = client.post(
        "/account/password-reset/new/", {**data, "factor": email_factor(alice), "code": second}
    )
    show(done)
    show(client.get(done["Location"]))

    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    secrets = [reset_code, second, NEW_PASSWORD, grant]
    seen.assert_clean(secrets, in_responses=secrets, signals=True)


def test_password_reset_api(alice, seen):
    from rest_framework.test import APIClient

    api, show = APIClient(), seen.response
    reset = show(api.post("/api/password-reset/", {"identifier": "alice"})).json()["reset"]
    reset_code = last_code()
    show(api.post("/api/password-reset/verify/", {"reset": reset, "code": wrong_code(reset_code)}))
    verified = show(api.post("/api/password-reset/verify/", {"reset": reset, "code": reset_code}))
    grant = verified.json()["grant"]
    factor = email_factor(alice)
    show(api.post("/api/password-reset/send/", {"grant": grant, "factor": factor}))
    second = email_code()
    payload = {"factor": factor, "code": second}
    body = {"grant": grant, "new_password": NEW_PASSWORD, "second_factor": payload}
    assert show(api.post("/api/password-reset/complete/", body, format="json")).status_code == 200

    # The grant is the API's answer; it must go nowhere else. (The reset id is the
    # ``PasswordReset`` row's own column, so signal receivers that get the row see it.)
    seen.assert_clean(
        [reset_code, second, NEW_PASSWORD, grant],
        in_responses=[reset_code, second, NEW_PASSWORD],
        signals=True,
    )


def test_recovery_codes_generated_and_used(client, user, seen):
    login_fully(client)
    codes = seen.response(client.post(RECOVERY)).context["codes"]
    hashes = list(RecoveryCode.objects.values_list("code_hash", flat=True))
    other = Client()
    password_step(other)
    seen.responses.clear()  # the page that lists the codes shows them, once, by design
    show = seen.response
    show(other.post(SWITCH, {"factor": "recovery"}))
    show(other.get(VERIFY))
    show(other.post(VERIFY, {"code": "ABCDE-FGHJK-MNPQR"}))
    used = show(other.post(VERIFY, {"code": codes[0]}))
    assert used.status_code == 302
    show(other.get(used["Location"]))
    show(other.get(RECOVERY))
    assert recovery.remaining_codes(user) == 9

    seen.assert_clean(
        [*codes, *(c.replace("-", "") for c in codes), *hashes, PASSWORD],
        in_responses=[*codes, *hashes],
        signals=True,
    )


def test_authenticator_setup(client, user, clock, seen):
    login_fully(client)
    page = client.get(TOTP_ADD)
    seed = secret_from_page(page.content.decode())
    device = TOTPDevice.objects.get(user=user)
    uri = re.search(r'href="(otpauth://[^"]+)"', page.content.decode())
    assert uri is not None
    b32 = otp.b32encode(seed)
    grouped = " ".join(b32[i : i + 4] for i in range(0, len(b32), 4))
    wrong = client.post(TOTP_ADD, {"code": other_code(code_now(seed)), "name": "Aegis"})
    assert wrong.status_code == 200
    code = code_now(seed)
    show = seen.response  # from here on the seed is never shown again
    done = show(client.post(TOTP_ADD, {"code": code, "name": "Aegis"}))
    assert done.status_code == 302
    show(client.get(done["Location"]))
    show(client.get("/account/devices/"))
    device.refresh_from_db()
    assert device.confirmed

    seeds = [b32, b32.lower(), grouped, seed.hex(), uri.group(1)]
    token = device.encrypted_seed  # a column of the device that signals carry; not logged
    seen.assert_clean([*seeds, code], in_responses=[*seeds, code, token], signals=True)
    assert not [text for text in seen.logs if token in text]
    assert not [m for m in mail.outbox if b32 in m.body or code in m.body]


def test_api_flow_tokens(alice, clock, seen):
    from rest_framework.test import APIClient

    api, show = APIClient(), seen.response
    first = show(api.post("/api/login/", {"username": "alice", "password": PASSWORD})).json()
    code = last_code()
    show(
        api.post("/api/login/verify/", {"challenge": first["challenge"], "code": wrong_code(code)})
    )
    other = email_factor(alice)
    assert other in [f["key"] for f in first["factors"]]
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    switched = show(
        api.post("/api/login/switch/", {"challenge": first["challenge"], "factor": other})
    )
    assert switched.status_code == 200, switched.content
    second_code = email_code()
    verified = show(
        api.post(
            "/api/login/verify/", {"challenge": switched.json()["challenge"], "code": second_code}
        )
    )
    assert verified.status_code == 200, verified.content
    token = verified.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    show(api.get("/api/me/"))
    show(api.post("/api/logout/"))

    flows = [first["challenge"], switched.json()["challenge"]]
    seen.assert_clean(
        [PASSWORD, code, second_code, token, *flows],
        in_responses=[PASSWORD, code, second_code],
        signals=True,
    )


# Django's template engine logs the whole context at DEBUG when a lookup fails: the pages
# that show a secret once must resolve every variable, and the secrets keep out of reprs.


def test_the_pages_that_show_secrets_fail_no_template_lookup(client, user, seen):
    login_fully(client)
    seen.logs.clear()

    assert client.get(TOTP_ADD).status_code == 200
    assert client.post(RECOVERY).status_code == 200

    assert not [text for text in seen.logs if text.startswith("django.template ")]


def test_shown_once_values_have_reprs_without_the_secret(user):
    from otp_auth.services import totp as totp_service

    codes = recovery.generate_codes(user)
    device = totp_service.create_device(user)
    setup = totp_service.provisioning(device, account="alice", issuer="Example")

    assert repr(codes) == "<10 recovery codes>" and codes[0] not in repr([codes])
    text = repr(setup)
    assert setup.secret not in text and setup.uri not in text and "<svg" not in text
