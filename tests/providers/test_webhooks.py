"""Delivery-status webhooks: Twilio signatures, Arkesel secret tokens, status updates."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client

from otp_auth.exceptions import ConfigurationError
from otp_auth.models import Challenge, DeliveryAttempt
from otp_auth.providers import get_provider
from otp_auth.providers.twilio import SMSProvider as TwilioSMSProvider
from otp_auth.providers.twilio import compute_signature
from otp_auth.services import resend_challenge
from otp_auth.signals import delivery_status_changed
from tests.conftest import password_step

from .conftest import WEBHOOK_BASE, arkesel_options, code_in, twilio_options

try:  # The official package, for cross-checks only: not a dependency of otp_auth.
    from twilio.request_validator import RequestValidator
except ImportError:  # pragma: no cover - depends on the environment
    RequestValidator = None

_skip_without_twilio = pytest.mark.skipif(
    RequestValidator is None, reason="cross-check with the official twilio package"
)


def needs_twilio(test: Any) -> Any:
    """Cross-checked with Twilio's own validator (the ``vendors`` group; CI requires it)."""
    return pytest.mark.vendors(_skip_without_twilio(test))


pytestmark = pytest.mark.django_db

ARKESEL = "otp_auth.providers.arkesel.SMSProvider"
TWILIO = "otp_auth.providers.twilio.SMSProvider"
TWILIO_URL = "/account/webhooks/default/"


def test_signature_matches_twilios_published_example():
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    assert compute_signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert compute_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_repeated_identical_values_count_once_as_twilio_signs_them():
    """Vector produced by the official ``twilio`` package's RequestValidator (9.13)."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("Digits", "1234"),
        ("Digits", "1234"),
        ("Digits", "5678"),
        ("CallSid", "CA1"),
        ("Body", "h\u00e9llo w\u00f6rld"),
    ]
    assert compute_signature("12345", url, params) == "4yVsFfd5Yao4I7srgvvQzpDNwR8="


@needs_twilio
def test_matches_the_official_validator_on_random_forms():
    """Cross-check with Twilio's own RequestValidator (the ``test`` group installs it)."""
    rng = random.Random(1234)
    names = ["Body", "To", "From", "MessageSid", "Digits", "a", "A", "b_1", "\u00e9t\u00e9"]
    values = ["", "1", "1234", "+233241234567", "h\u00e9llo", "a&b=c", "\U0001f600", " x "]
    for _ in range(200):
        pairs = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 8))]
        query = QueryDict(mutable=True)
        for name, value in pairs:
            query.appendlist(name, value)
        url = f"https://otp.example.com/hook/?n={rng.randint(0, 9)}"
        official = RequestValidator("tok").compute_signature(url, query)
        assert compute_signature("tok", url, pairs) == official, pairs


@pytest.fixture
def twilio_sent(client, user, use_providers, fake_twilio):
    """A login code sent through Twilio with status callbacks on; returns the attempt."""
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    assert password_step(client).status_code == 302
    assert fake_twilio.last.form["StatusCallback"] == f"{WEBHOOK_BASE}{TWILIO_URL}"
    return DeliveryAttempt.objects.get()


def post_twilio(params, *, token, url=f"{WEBHOOK_BASE}{TWILIO_URL}", path=TWILIO_URL, **headers):
    signature = compute_signature(token, url, params.items())
    headers.setdefault("HTTP_X_TWILIO_SIGNATURE", signature)
    return Client(enforce_csrf_checks=True).post(path, params, **headers)


def test_signed_twilio_callback_updates_attempt_and_challenge(twilio_sent, fake_twilio):
    changes = []

    def receiver(sender, attempt, status, **kwargs):
        changes.append((attempt.pk, status))

    delivery_status_changed.connect(receiver)
    try:
        params = {"MessageSid": twilio_sent.reference, "MessageStatus": "sent", "SmsStatus": "sent"}
        assert post_twilio(params, token=fake_twilio.auth_token).status_code == 204
        params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
        assert post_twilio(params, token=fake_twilio.auth_token).status_code == 204
    finally:
        delivery_status_changed.disconnect(receiver)
    twilio_sent.refresh_from_db()
    assert (twilio_sent.status, twilio_sent.raw_status) == ("delivered", "delivered")
    assert twilio_sent.status_updated_at is not None
    assert Challenge.objects.get().delivery_status == "delivered"
    assert changes == [(twilio_sent.pk, "sent"), (twilio_sent.pk, "delivered")]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"HTTP_X_TWILIO_SIGNATURE": ""},
        {"HTTP_X_TWILIO_SIGNATURE": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
    ],
    ids=["missing", "empty", "wrong"],
)
def test_bad_or_missing_twilio_signature_is_403_and_changes_nothing(
    twilio_sent, fake_twilio, headers
):
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    response = Client().post(TWILIO_URL, params, **headers)
    assert response.status_code == 403
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "queued"
    assert Challenge.objects.get().delivery_status == "queued"


def test_signature_with_another_token_or_tampered_params_is_refused(twilio_sent, fake_twilio):
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    assert post_twilio(params, token="not-the-auth-token").status_code == 403
    signature = compute_signature(fake_twilio.auth_token, f"{WEBHOOK_BASE}{TWILIO_URL}", [])
    response = Client().post(TWILIO_URL, params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "queued"


def test_the_url_comes_from_the_setting_not_the_host_header(twilio_sent, fake_twilio):
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    # Signed for the Host header the request carries: refused.
    forged = post_twilio(
        params,
        token=fake_twilio.auth_token,
        url=f"http://localhost{TWILIO_URL}",
        HTTP_HOST="localhost",
    )
    assert forged.status_code == 403
    # Signed for WEBHOOK_BASE_URL: accepted whatever the Host header says.
    genuine = post_twilio(params, token=fake_twilio.auth_token, HTTP_HOST="localhost")
    assert genuine.status_code == 204


def test_signature_over_the_url_with_default_port_is_accepted(twilio_sent, fake_twilio):
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    response = post_twilio(
        params, token=fake_twilio.auth_token, url=f"{WEBHOOK_BASE}:443{TWILIO_URL}"
    )
    assert response.status_code == 204


def test_query_string_is_part_of_the_signed_url(twilio_sent, fake_twilio):
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    path = f"{TWILIO_URL}?attempt=1"
    token = fake_twilio.auth_token
    # Signed without the query string, requested with it (and the other way round).
    assert post_twilio(params, token=token, path=path).status_code == 403
    signed_with_query = compute_signature(token, f"{WEBHOOK_BASE}{path}", params.items())
    response = Client().post(TWILIO_URL, params, HTTP_X_TWILIO_SIGNATURE=signed_with_query)
    assert response.status_code == 403
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "queued"
    ok = post_twilio(params, token=token, url=f"{WEBHOOK_BASE}{path}", path=path)
    assert ok.status_code == 204


@needs_twilio
def test_form_with_repeated_values_signed_by_the_official_validator(twilio_sent, fake_twilio):
    body = f"MessageSid={twilio_sent.reference}&MessageStatus=delivered&Tag=a&Tag=a&Tag=b"
    url = f"{WEBHOOK_BASE}{TWILIO_URL}"
    signature = RequestValidator(fake_twilio.auth_token).compute_signature(url, QueryDict(body))
    response = Client().post(
        TWILIO_URL,
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 204
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "delivered"


def test_json_callback_signed_with_body_hash_updates_the_attempt(twilio_sent, fake_twilio):
    body = json.dumps({"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    path = f"{TWILIO_URL}?bodySHA256={digest}"
    signature = compute_signature(fake_twilio.auth_token, f"{WEBHOOK_BASE}{path}", [])
    response = Client().post(
        path, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 204
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "delivered"


@needs_twilio
def test_json_callback_signed_by_the_official_validator(twilio_sent, fake_twilio):
    body = json.dumps({"MessageSid": twilio_sent.reference, "MessageStatus": "sent"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    path = f"{TWILIO_URL}?bodySHA256={digest}"
    validator = RequestValidator(fake_twilio.auth_token)
    signature = validator.compute_signature(f"{WEBHOOK_BASE}{path}", {})
    assert validator.validate(f"{WEBHOOK_BASE}{path}", body, signature)
    response = Client().post(
        path, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 204
    tampered = body.replace("sent", "failed")
    response = Client().post(
        path, tampered, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 403


def test_json_body_hash_vector_from_the_official_validator():
    """Vector produced by the official RequestValidator for a JSON callback."""
    body = '{"MessageSid": "SM1", "MessageStatus": "delivered"}'
    digest = "30814f60515fe0e3d84d486f85e1c2d4375fa8739dd5bd62f40ed65143a4d503"
    assert hashlib.sha256(body.encode()).hexdigest() == digest
    url = f"{WEBHOOK_BASE}/account/webhooks/default/?bodySHA256={digest}"
    assert compute_signature("12345", url, []) == "XeIMRBe9SBU2DV6HrJQ08eZoJLI="


def test_previous_auth_token_is_accepted_during_rotation(client, user, use_providers, fake_twilio):
    old = "old-auth-token-0123456789abcdef"
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(
            TWILIO,
            twilio_options(fake_twilio, from_number="+15005550006", auth_token_previous=[old]),
        ),
    )
    assert password_step(client).status_code == 302
    attempt = DeliveryAttempt.objects.get()
    params = {"MessageSid": attempt.reference, "MessageStatus": "sent"}
    assert post_twilio(params, token="some-other-token").status_code == 403
    assert post_twilio(params, token=old).status_code == 204
    params["MessageStatus"] = "delivered"
    assert post_twilio(params, token=fake_twilio.auth_token).status_code == 204
    attempt.refresh_from_db()
    assert attempt.status == "delivered"
    assert old in get_provider("default").secrets()  # kept out of error excerpts


def test_previous_auth_token_must_be_tokens(fake_twilio):
    with pytest.raises(ConfigurationError, match="auth_token_previous"):
        TwilioSMSProvider(
            alias="tw",
            **twilio_options(fake_twilio, from_number="+15005550006", auth_token_previous=[1]),
        )


def test_json_webhook_with_body_hash(twilio_sent, fake_twilio):
    body = json.dumps({"MessageSid": twilio_sent.reference}).encode()
    digest = hashlib.sha256(body).hexdigest()
    path = f"{TWILIO_URL}?bodySHA256={digest}"
    signature = compute_signature(fake_twilio.auth_token, f"{WEBHOOK_BASE}{path}", [])
    client = Client()
    # Authentic, but the JSON carries no status: 400, nothing recorded.
    response = client.post(
        path, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 400
    response = client.post(
        path, body + b" ", content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 403


def test_without_webhook_base_url_every_callback_is_refused(twilio_sent, fake_twilio, settings):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": None}
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "delivered"}
    assert post_twilio(params, token=fake_twilio.auth_token).status_code == 403


def test_late_and_repeated_callbacks_change_nothing(twilio_sent, fake_twilio):
    token = fake_twilio.auth_token
    failed = {
        "MessageSid": twilio_sent.reference,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    assert post_twilio(failed, token=token).status_code == 204
    for status in ("sent", "delivered", "undelivered"):
        params = {"MessageSid": twilio_sent.reference, "MessageStatus": status}
        assert post_twilio(params, token=token).status_code == 204
    twilio_sent.refresh_from_db()
    assert (twilio_sent.status, twilio_sent.raw_status, twilio_sent.vendor_code) == (
        "failed",
        "undelivered",
        "30003",
    )
    assert Challenge.objects.get().delivery_status == "failed"


def test_unknown_sid_and_unknown_status_are_accepted_and_ignored(twilio_sent, fake_twilio):
    token = fake_twilio.auth_token
    unknown_sid = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"}
    assert post_twilio(unknown_sid, token=token).status_code == 204
    odd = {"MessageSid": twilio_sent.reference, "MessageStatus": "teleported"}
    assert post_twilio(odd, token=token).status_code == 204
    missing = {"MessageStatus": "delivered"}
    assert post_twilio(missing, token=token).status_code == 400
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "queued"


def test_call_status_callback(client, user, use_providers, fake_twilio):
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    user.otp_devices.update(channels=["voice", "sms"])
    password_step(client)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.reference.startswith("CA")
    params = {"CallSid": attempt.reference, "CallStatus": "completed"}
    assert post_twilio(params, token=fake_twilio.auth_token).status_code == 204
    attempt.refresh_from_db()
    assert attempt.status == "delivered"


def test_a_callback_for_an_earlier_send_leaves_the_challenge_alone(
    twilio_sent, fake_twilio, user, settings
):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "RESEND_COOLDOWN": 0}
    challenge = Challenge.objects.get()
    resend_challenge(challenge.public_id, user=user)
    params = {"MessageSid": twilio_sent.reference, "MessageStatus": "failed"}
    assert post_twilio(params, token=fake_twilio.auth_token).status_code == 204
    twilio_sent.refresh_from_db()
    assert twilio_sent.status == "failed"
    challenge.refresh_from_db()
    assert challenge.delivery_status == "queued"  # the resent code's own status


def test_get_to_a_twilio_callback_is_refused(twilio_sent, fake_twilio):
    assert Client().get(TWILIO_URL, {"MessageSid": twilio_sent.reference}).status_code == 403


# Arkesel ---------------------------------------------------------------------------------


@pytest.fixture
def arkesel_sent(client, user, use_providers, fake_arkesel):
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(ARKESEL, arkesel_options(fake_arkesel)),
    )
    assert password_step(client).status_code == 302
    return DeliveryAttempt.objects.get()


def arkesel_path(token: str) -> str:
    return f"/account/webhooks/default/{token}/"


def test_arkesel_callback_with_our_token(arkesel_sent, fake_arkesel):
    token = get_provider("default").callback_token()
    assert fake_arkesel.last.json["callback_url"] == f"{WEBHOOK_BASE}{arkesel_path(token)}"
    response = Client(enforce_csrf_checks=True).get(
        arkesel_path(token), {"sms_id": arkesel_sent.reference, "status": "DELIVERED"}
    )
    assert response.status_code == 204
    arkesel_sent.refresh_from_db()
    assert (arkesel_sent.status, arkesel_sent.raw_status) == ("delivered", "DELIVERED")
    assert Challenge.objects.get().delivery_status == "delivered"


def test_arkesel_callback_may_be_posted(arkesel_sent):
    token = get_provider("default").callback_token()
    response = Client(enforce_csrf_checks=True).post(
        arkesel_path(token), {"sms_id": arkesel_sent.reference, "status": "NOT_DELIVERED"}
    )
    assert response.status_code == 204
    arkesel_sent.refresh_from_db()
    assert arkesel_sent.status == "failed"


@pytest.mark.parametrize("token", ["wrong-token", "0" * 40, None], ids=["wrong", "zeros", "none"])
def test_arkesel_callback_without_our_token_is_403(arkesel_sent, token):
    path = arkesel_path(token) if token else "/account/webhooks/default/"
    response = Client().get(path, {"sms_id": arkesel_sent.reference, "status": "DELIVERED"})
    assert response.status_code == 403
    arkesel_sent.refresh_from_db()
    assert arkesel_sent.status == "queued"


def test_arkesel_status_map_option(client, user, use_providers, fake_arkesel):
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(ARKESEL, arkesel_options(fake_arkesel, status_map={"SUCCESS": "delivered"})),
    )
    password_step(client)
    attempt = DeliveryAttempt.objects.get()
    token = get_provider("default").callback_token()
    Client().get(arkesel_path(token), {"sms_id": attempt.reference, "status": "success"})
    attempt.refresh_from_db()
    assert attempt.status == "delivered"


def test_arkesel_callback_missing_fields_is_400(arkesel_sent):
    token = get_provider("default").callback_token()
    assert Client().get(arkesel_path(token), {"status": "DELIVERED"}).status_code == 400


def test_unknown_alias_and_providers_without_callbacks_are_404(arkesel_sent):
    assert Client().post("/account/webhooks/nope/", {}).status_code == 404
    assert Client().post("/account/webhooks/email/", {}).status_code == 404


def test_admin_shows_attempts_and_no_secret(client, make_user, arkesel_sent, fake_arkesel):
    make_user("root", phone="+233201234567", is_staff=True, is_superuser=True)
    staff = Client()
    password_step(staff, "root")
    code = code_in(fake_arkesel.sent[-1].text)
    assert staff.post("/account/login/verify/", {"code": code}).status_code == 302
    challenge = Challenge.objects.filter(user__username="alice").get()
    page = staff.get(f"/admin/otp_auth/challenge/{challenge.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "delivery attempt" in html.lower()
    assert arkesel_sent.reference in html
    assert fake_arkesel.api_key not in html
    assert get_provider("default").callback_token() not in html
