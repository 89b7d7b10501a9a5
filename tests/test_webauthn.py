"""Security keys and passkeys: the server's checks on real ceremony data (a software
authenticator signs what a browser would send), the HTML flows, the API, the epoch, the
factor-change policy and the lockout budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, RequestFactory

from otp_auth.exceptions import (
    AccountLockedError,
    RateLimitedError,
    StepUpRequiredError,
    WebAuthnRefusedError,
    WebAuthnRegistrationError,
)
from otp_auth.models import AuditEvent, Lockout, WebAuthnCredential
from otp_auth.services import epoch, factors, policy
from otp_auth.services import webauthn as service
from tests.conftest import login_fully, otp_settings, password_step
from tests.webauthn_authenticator import SoftAuthenticator

pytestmark = [pytest.mark.django_db]

ON = otp_settings(WEBAUTHN=True, PASSKEY_LOGIN=True)


@pytest.fixture(autouse=True)
def _webauthn_on() -> Any:
    with ON:
        yield


def _request() -> Any:
    request = RequestFactory().post("/")
    request.session = {}  # type: ignore[attr-defined]
    return request


def _register(user: Any, key: SoftAuthenticator, *, passkey: bool = True, **answer: Any) -> Any:
    ceremony, options = service.registration_options(
        user, request=_request(), bind="b", passkey=passkey
    )
    return service.register(
        user, ceremony.id, key.create(options, **answer), bind="b", request=None
    )


def _assert(user: Any, key: SoftAuthenticator, **answer: Any) -> Any:
    ceremony, options = service.authentication_options(user, request=_request(), bind="b")
    return service.verify_assertion(user, ceremony.id, key.get(options, **answer), bind="b")


def test_a_registration_ceremony_stores_the_key_and_advances_the_epoch(user):
    before = epoch.current(user)
    row = _register(user, SoftAuthenticator())
    assert row.sign_count == 0 and row.transports == ["usb"] and row.discoverable
    assert epoch.current(user) > before
    assert AuditEvent.objects.filter(kind="factor_added", detail="factor=webauthn").count() == 1
    assert [f.kind for f in factors.user_factors(user)][0] == "webauthn"
    assert policy.has_any_factor(user)


@pytest.mark.parametrize(
    "answer",
    [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}],
    ids=["foreign origin", "foreign rp id"],
)
def test_registration_from_another_origin_or_rp_is_refused(user, answer):
    with pytest.raises(WebAuthnRegistrationError):
        _register(user, SoftAuthenticator(), **answer)
    assert not WebAuthnCredential.objects.exists()


def test_a_registration_challenge_is_single_use_and_bound(user):
    key = SoftAuthenticator()
    ceremony, options = service.registration_options(user, request=_request(), bind="b")
    answer = key.create(options)
    with pytest.raises(WebAuthnRegistrationError):
        service.register(user, ceremony.id, answer, bind="another session")
    # The wrong binding spent it: even the right one cannot use it now.
    with pytest.raises(WebAuthnRegistrationError):
        service.register(user, ceremony.id, answer, bind="b")


def test_a_passkey_registration_requires_user_verification(user):
    with pytest.raises(WebAuthnRegistrationError):
        _register(user, SoftAuthenticator(user_verified=False), passkey=True)


def test_an_epoch_change_ends_the_ceremony(user):
    from otp_auth.exceptions import FlowExpiredError

    key = SoftAuthenticator()
    ceremony, options = service.registration_options(user, request=_request(), bind="b")
    epoch.advance(user, reason=epoch.Reason.PASSWORD_CHANGED)
    with pytest.raises(FlowExpiredError):
        service.register(user, ceremony.id, key.create(options), bind="b")


def test_an_assertion_is_accepted_once_and_the_counter_recorded(user):
    key = SoftAuthenticator()
    _register(user, key)
    row = _assert(user, key)
    assert row.sign_count == 1 and row.last_used_at is not None
    ceremony, options = service.authentication_options(user, request=_request(), bind="b")
    answer = key.get(options)
    service.verify_assertion(user, ceremony.id, answer, bind="b")
    with pytest.raises(WebAuthnRefusedError):  # the same challenge again
        service.verify_assertion(user, ceremony.id, answer, bind="b")


def test_a_counter_that_goes_back_is_refused_and_audited(user):
    key = SoftAuthenticator()
    _register(user, key)
    _assert(user, key, counter=5)
    with pytest.raises(WebAuthnRefusedError):
        _assert(user, key, counter=5)  # a clone replaying the same counter
    assert WebAuthnCredential.objects.get().sign_count == 5
    refused = AuditEvent.objects.filter(kind="failed", detail="factor=webauthn")
    assert list(refused.values_list("reason", flat=True)) == ["sign_count"]
    assert Lockout.objects.get(user=user).failures == 1


def test_an_assertion_for_another_origin_is_refused_and_counted(user):
    key = SoftAuthenticator()
    _register(user, key)
    with pytest.raises(WebAuthnRefusedError):
        _assert(user, key, origin="https://phish.example")
    assert Lockout.objects.get(user=user).failures == 1


def test_refused_assertions_spend_the_lockout_budget_of_every_code(user):
    key = SoftAuthenticator()
    _register(user, key)
    with otp_settings(WEBAUTHN=True, LOCKOUT_THRESHOLD=3, VERIFY_DELAY_AFTER=10):
        for _ in range(3):
            with pytest.raises(WebAuthnRefusedError):
                _assert(user, key, rp_id="evil.example")
        with pytest.raises((AccountLockedError, RateLimitedError)):
            _assert(user, key)  # even the right key, while locked


def test_passkey_sign_in_finds_the_user_by_the_key(user):
    key = SoftAuthenticator()
    _register(user, key)
    ceremony, options = service.passkey_options(request=_request(), bind="p")
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    row = service.verify_passkey(ceremony.id, key.get(options), bind="p")
    assert row.user == user


def test_passkey_sign_in_refuses_an_unknown_key_and_a_foreign_user_handle(user):
    key = SoftAuthenticator()
    _register(user, key)
    ceremony, options = service.passkey_options(request=_request(), bind="p")
    stranger = SoftAuthenticator(credential_id=b"\x01" * 32, user_handle=key.user_handle)
    with pytest.raises(WebAuthnRefusedError):
        service.verify_passkey(ceremony.id, stranger.get(options), bind="p")
    ceremony, options = service.passkey_options(request=_request(), bind="p")
    key.user_handle = b"\x02" * 32
    with pytest.raises(WebAuthnRefusedError):
        service.verify_passkey(ceremony.id, key.get(options), bind="p")


def test_removing_a_key_advances_the_epoch_and_audits(user):
    _register(user, SoftAuthenticator())
    before = epoch.current(user)
    service.remove_credential(user, WebAuthnCredential.objects.get().pk)
    assert epoch.current(user) > before
    assert AuditEvent.objects.filter(kind="factor_removed", detail="factor=webauthn").exists()


def test_registration_needs_a_fresh_factor_once_the_user_has_one(user):
    with pytest.raises(StepUpRequiredError):
        policy.require_fresh_factor(None, user)  # the user's phone is a factor already


# ---------------------------------------------------------------------------- HTML


def _options(client: Client, purpose: str) -> dict[str, Any]:
    response = client.post("/account/webauthn/options/", {"purpose": purpose})
    assert response.status_code == 200, response.content
    return response.json()["publicKey"]


def test_html_register_then_sign_in_with_the_key_at_the_code_step(client, user):
    key = SoftAuthenticator()
    login_fully(client)
    answer = key.create(_options(client, "register"))
    response = client.post(
        "/account/security-keys/add/", {"credential": json.dumps(answer), "name": "Blue key"}
    )
    assert response.status_code == 302
    assert WebAuthnCredential.objects.get().name == "Blue key"

    other = Client()
    password_step(other)  # the phone was used last: its code is sent; switch to the key
    other.post("/account/login/switch/", {"factor": "webauthn"})
    page = other.get("/account/login/verify/")
    assert page.context["factor"] == "webauthn"
    assert 'data-webauthn="login"' in page.content.decode()
    answer = key.get(_options(other, "login"))
    response = other.post("/account/login/webauthn/", {"credential": json.dumps(answer)})
    assert response.status_code == 302
    assert other.get("/private/").status_code == 200


def test_html_registration_without_a_fresh_factor_is_refused(client, user, clock):
    login_fully(client)
    clock.shift(3600)  # past STEP_UP_MAX_AGE
    response = client.post("/account/webauthn/options/", {"purpose": "register"})
    assert response.status_code == 403
    assert response.json()["code"] == "step_up_required"


def test_html_passkey_sign_in_counts_as_both_factors(client, user):
    key = SoftAuthenticator()
    _register(user, key)
    page = client.get("/account/login/")
    assert 'autocomplete="username webauthn"' in page.content.decode()
    answer = key.get(_options(client, "passkey"))
    response = client.post("/account/login/passkey/", {"credential": json.dumps(answer)})
    assert response.status_code == 302
    assert client.get("/private/").status_code == 200
