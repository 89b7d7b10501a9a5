"""Arkesel against its fake server: exact requests, every mapped code, transport failures."""

from __future__ import annotations

import pytest

from otp_auth.constants import ChallengeStatus
from otp_auth.exceptions import (
    ConfigurationError,
    DestinationBlockedError,
    InvalidNumberError,
    ProviderAccountError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from otp_auth.models import Challenge, DeliveryAttempt
from otp_auth.providers import HostedVerification, OTPMessage
from otp_auth.providers.arkesel import SMSProvider, VerifyProvider
from tests.conftest import password_step
from tests.fakes import Reply
from tests.fakes.arkesel import result

from .conftest import WEBHOOK_BASE, arkesel_options, code_in

NUMBER = "+233241234567"


def message(text: str = "Your code is 123456.", channel: str = "sms") -> OTPMessage:
    return OTPMessage(destination=NUMBER, text=text, channel=channel, purpose="login")


def verification(channel: str = "sms", ttl: int = 300) -> HostedVerification:
    return HostedVerification(
        destination=NUMBER, channel=channel, purpose="login", code_length=6, ttl=ttl
    )


# Deliver-only SMS ------------------------------------------------------------------------


def test_sms_request_on_the_wire(fake_arkesel):
    provider = SMSProvider(alias="ark", **arkesel_options(fake_arkesel))
    outcome = provider.send(message())

    request = fake_arkesel.last
    assert request.method == "POST"
    assert request.path == "/api/v2/sms/send"
    assert request.query == {}
    assert request.headers["api-key"] == fake_arkesel.api_key
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.json == {
        "sender": "Example",
        "message": "Your code is 123456.",
        "recipients": ["233241234567"],
    }
    assert fake_arkesel.sent[0].recipient == "233241234567"
    assert outcome.provider == "arkesel"
    assert outcome.status == "queued"
    assert outcome.reference == fake_arkesel.sent[0].id


@pytest.mark.parametrize(
    ("number_format", "wire"),
    [("international", "233241234567"), ("e164", "+233241234567"), ("national", "0241234567")],
)
def test_number_format_is_configurable(fake_arkesel, number_format, wire):
    provider = SMSProvider(
        alias="ark", **arkesel_options(fake_arkesel, number_format=number_format)
    )
    provider.send(message())
    assert fake_arkesel.last.json["recipients"] == [wire]


def test_sms_options_sandbox_use_case_and_path(fake_arkesel):
    fake_arkesel.script(Reply(200, {"status": "success", "data": []}, path="/v9/send"))
    provider = SMSProvider(
        alias="ark",
        **arkesel_options(fake_arkesel, sandbox=True, use_case="transactional", path="/v9/send"),
    )
    provider.send(message())
    assert fake_arkesel.last.path == "/v9/send"
    assert fake_arkesel.last.json["sandbox"] is True
    assert fake_arkesel.last.json["use_case"] == "transactional"


def test_sms_callback_url_carries_our_token_when_webhooks_are_on(fake_arkesel, settings):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": WEBHOOK_BASE}
    provider = SMSProvider(alias="ark", **arkesel_options(fake_arkesel))
    provider.send(message())
    token = provider.callback_token()
    assert fake_arkesel.last.json["callback_url"] == (
        f"{WEBHOOK_BASE}/account/webhooks/ark/{token}/"
    )


def test_invalid_number_in_reply_is_a_form_error(fake_arkesel):
    fake_arkesel.invalid_numbers.add("233241234567")
    provider = SMSProvider(alias="ark", **arkesel_options(fake_arkesel))
    with pytest.raises(InvalidNumberError) as info:
        provider.send(message())
    assert "cannot receive codes" in str(info.value.message)  # shown to the user
    assert str(info.value) == "Arkesel: invalid number provider=arkesel status=200"


def sms_error(status: int, text: str) -> Reply:
    return Reply(status, {"status": "error", "message": text})


@pytest.mark.parametrize(
    ("reply", "error", "reason"),
    [
        (sms_error(401, "Invalid API key"), ProviderAccountError, "authentication"),
        (sms_error(403, "Forbidden"), ProviderAccountError, "authentication"),
        (sms_error(402, "Payment required"), ProviderAccountError, "insufficient_funds"),
        (sms_error(200, "Insufficient balance"), ProviderAccountError, "insufficient_funds"),
        (sms_error(200, "Sender ID not approved"), ProviderAccountError, "sender"),
        (sms_error(200, "Invalid phone number"), InvalidNumberError, None),
        (sms_error(422, "Validation error"), ProviderRejectedError, None),
        (sms_error(200, "Something else"), ProviderRejectedError, None),
    ],
)
def test_sms_error_replies(fake_arkesel, reply, error, reason):
    fake_arkesel.script(reply)
    provider = SMSProvider(alias="ark", **arkesel_options(fake_arkesel))
    with pytest.raises(error) as info:
        provider.send(message())
    assert type(info.value) is error
    assert info.value.provider == "arkesel"
    assert info.value.status == reply.status
    if reason:
        assert info.value.reason == reason


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        # Arkesel documents no 5xx as "not processed": the outcome is unknown.
        (Reply(500, {"status": "error"}), ProviderTimeoutError),
        (Reply(502, body="<html>Bad gateway</html>"), ProviderTimeoutError),
        (Reply(200, body="not json"), ProviderResponseError),
        (Reply(200, body="[1, 2]"), ProviderResponseError),
        (Reply(200, {"status": "success"}, delay=1.0), ProviderTimeoutError),
        (Reply(drop=True), ProviderTimeoutError),
    ],
)
def test_sms_transport_failures(fake_arkesel, reply, error):
    fake_arkesel.script(reply)
    provider = SMSProvider(alias="ark", **arkesel_options(fake_arkesel))
    with pytest.raises(error):
        provider.send(message())
    assert len(fake_arkesel.requests) == 1  # never retried


def test_options_are_validated(fake_arkesel):
    with pytest.raises(ConfigurationError, match="api_key"):
        SMSProvider(alias="ark", sender_id="Example")
    with pytest.raises(ConfigurationError, match="number_format"):
        SMSProvider(alias="ark", **arkesel_options(fake_arkesel, number_format="local"))
    with pytest.raises(ConfigurationError, match="%otp_code%"):
        VerifyProvider(alias="ark", **arkesel_options(fake_arkesel, message="Code: {code}"))
    with pytest.raises(ConfigurationError, match="code_type"):
        VerifyProvider(alias="ark", **arkesel_options(fake_arkesel, code_type="hex"))


# Django 6 runs database checks as part of `check`.
@pytest.mark.django_db
def test_sender_id_longer_than_eleven_characters_fails_the_system_check(
    fake_arkesel, use_providers
):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    use_providers(
        default=(
            "otp_auth.providers.arkesel.SMSProvider",
            arkesel_options(fake_arkesel, sender_id="TwelveChars!"),
        )
    )
    with pytest.raises(SystemCheckError, match=r"otp_auth.E008"):
        call_command("check")
    use_providers(
        default=(
            "otp_auth.providers.arkesel.SMSProvider",
            arkesel_options(fake_arkesel, sender_id="ElevenChars"),
        )
    )
    call_command("check")


# Hosted verify (OTP API) -----------------------------------------------------------------


def test_generate_request_on_the_wire(fake_arkesel, settings):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "SITE_NAME": "Example"}
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    outcome = provider.start(verification(ttl=270))

    request = fake_arkesel.last
    assert request.method == "POST"
    assert request.path == "/api/otp/generate"
    assert request.headers["api-key"] == fake_arkesel.api_key
    assert request.json == {
        "expiry": 5,
        "length": 6,
        "medium": "sms",
        "message": "Your Example code is %otp_code%. It expires in %expiry% minutes. "
        "Never share it.",
        "number": "233241234567",
        "sender_id": "Example",
        "type": "numeric",
    }
    assert outcome.status == "queued"
    assert outcome.raw_status == "1000"
    number, medium, text = fake_arkesel.otp_messages[0]
    code = fake_arkesel.codes["233241234567"][0]
    assert (number, medium) == ("233241234567", "sms")
    assert text.startswith(f"Your Example code is {code}. It expires in 5 minutes")


def test_voice_uses_the_voice_medium_and_options_override(fake_arkesel):
    fake_arkesel.script(Reply(200, {"code": 1000}, path="/otp/new"))
    provider = VerifyProvider(
        alias="ark",
        **arkesel_options(
            fake_arkesel,
            message="Code %otp_code%",
            expiry_minutes=3,
            generate_path="/otp/new",
        ),
    )
    provider.start(verification(channel="voice"))
    assert fake_arkesel.last.path == "/otp/new"
    assert fake_arkesel.last.json["medium"] == "voice"
    assert fake_arkesel.last.json["message"] == "Code %otp_code%"
    assert fake_arkesel.last.json["expiry"] == 3


def test_check_right_wrong_and_expired_codes(fake_arkesel):
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    provider.start(verification())
    code = fake_arkesel.codes["233241234567"][0]
    wrong = "000000" if code != "000000" else "111111"

    assert provider.check("", NUMBER, wrong) is False
    request = fake_arkesel.last
    assert request.path == "/api/otp/verify"
    assert request.headers["api-key"] == fake_arkesel.api_key
    assert request.json == {"number": "233241234567", "code": wrong}

    assert provider.check("", NUMBER, code) is True
    assert provider.check("", NUMBER, code) is False  # single use in the fake: now 1105

    provider.start(verification())
    fake_arkesel.expire("233241234567")
    assert provider.check("", NUMBER, fake_arkesel.codes["233241234567"][0]) is False


GENERATE_ERRORS = [
    ("1001", ProviderRejectedError, None),
    ("1002", ProviderAccountError, "configuration"),
    ("1003", ProviderAccountError, "sender"),
    ("1004", ProviderAccountError, "configuration"),
    ("1005", InvalidNumberError, None),
    ("1006", DestinationBlockedError, None),
    ("1007", ProviderAccountError, "insufficient_funds"),
    ("1008", ProviderAccountError, "insufficient_funds"),
    ("1009", ProviderAccountError, "configuration"),
    ("1011", ProviderUnavailableError, None),
]


@pytest.mark.parametrize("http_status", [200, 400])
@pytest.mark.parametrize(("code", "error", "reason"), GENERATE_ERRORS)
def test_every_generate_code_is_mapped(fake_arkesel, code, error, reason, http_status):
    fake_arkesel.script(result(code, http_status))
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    with pytest.raises(error) as info:
        provider.start(verification())
    assert type(info.value) is error
    assert info.value.vendor_code == code
    assert info.value.status == http_status
    assert str(info.value).startswith(f"Arkesel {code}:")
    if reason:
        assert info.value.reason == reason


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("1101", ProviderRejectedError),
        ("1102", InvalidNumberError),
        ("1103", InvalidNumberError),
        ("1106", ProviderUnavailableError),
    ],
)
def test_every_verify_error_code_is_mapped(fake_arkesel, code, error):
    fake_arkesel.script(result(code))
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    with pytest.raises(error) as info:
        provider.check("", NUMBER, "123456")
    assert type(info.value) is error
    assert info.value.vendor_code == code
    assert "123456" not in info.value.response


def test_verify_refusals_are_false_not_errors(fake_arkesel):
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    for code in ("1104", "1105"):
        fake_arkesel.script(result(code))
        assert provider.check("", NUMBER, "123456") is False


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(200, {"code": 1000}), None),  # a number instead of a string still counts
        (Reply(200, {"code": "9999", "message": "?"}), ProviderResponseError),
        (Reply(401, {"message": "Unauthenticated."}), ProviderAccountError),
        (Reply(422, {"message": "The number field is required."}), ProviderRejectedError),
        (Reply(200, body="<html>"), ProviderResponseError),
        (Reply(503, body=""), ProviderTimeoutError),
        (Reply(200, {"code": "1000"}, delay=1.0), ProviderTimeoutError),
    ],
)
def test_generate_odd_replies(fake_arkesel, reply, error):
    fake_arkesel.script(reply)
    provider = VerifyProvider(alias="ark", **arkesel_options(fake_arkesel))
    if error is None:
        assert provider.start(verification()).status == "queued"
    else:
        with pytest.raises(error):
            provider.start(verification())
    assert len(fake_arkesel.requests) == 1


def test_wrong_api_key_is_an_account_error(fake_arkesel):
    provider = VerifyProvider(
        alias="ark", **arkesel_options(fake_arkesel, api_key="not-the-key-000")
    )
    with pytest.raises(ProviderAccountError) as info:
        provider.start(verification())
    assert info.value.reason == "authentication"
    assert "not-the-key-000" not in info.value.response


# Through the login flow ------------------------------------------------------------------


@pytest.mark.django_db
def test_login_with_deliver_only_arkesel(client, user, fake_arkesel, use_providers):
    use_providers(default=("otp_auth.providers.arkesel.SMSProvider", arkesel_options(fake_arkesel)))
    response = password_step(client)
    assert response.status_code == 302
    sms = fake_arkesel.sent[-1]
    assert sms.recipient == "233241234567"
    challenge = Challenge.objects.get()
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.challenge, attempt.provider_alias, attempt.provider_name) == (
        challenge,
        "default",
        "arkesel",
    )
    assert (attempt.outcome, attempt.reference, attempt.status) == ("accepted", sms.id, "queued")
    assert challenge.provider_reference == sms.id
    response = client.post("/account/login/verify/", {"code": code_in(sms.text)})
    assert response.status_code == 302
    assert client.get("/private/").content == b"private alice"


@pytest.mark.django_db
def test_login_with_arkesel_hosted_verify(client, user, fake_arkesel, use_providers):
    use_providers(
        default=("otp_auth.providers.arkesel.VerifyProvider", arkesel_options(fake_arkesel))
    )
    assert password_step(client).status_code == 302
    challenge = Challenge.objects.get()
    assert challenge.code_hash == ""  # Arkesel holds the code, we hold nothing
    code = fake_arkesel.codes["233241234567"][0]
    wrong = "000000" if code != "000000" else "111111"
    client.post("/account/login/verify/", {"code": wrong})
    challenge.refresh_from_db()
    assert challenge.attempts == 1
    response = client.post("/account/login/verify/", {"code": code})
    assert response.status_code == 302
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.VERIFIED


@pytest.mark.django_db
@pytest.mark.parametrize("router", [False, True])
def test_login_with_arkesel_alphanumeric_codes(client, user, fake_arkesel, use_providers, router):
    """Arkesel's alphabet is not ours (CODE_ALPHABET is numeric, and ours has no 0/O/1/I):
    its codes must reach Arkesel's check as typed, upper-cased."""
    options = arkesel_options(fake_arkesel, code_type="alphanumeric")
    if router:
        use_providers(
            default=("otp_auth.providers.routing.VerifyProvider", {"providers": ["ark"]}),
            ark=("otp_auth.providers.arkesel.VerifyProvider", options),
        )
    else:
        use_providers(default=("otp_auth.providers.arkesel.VerifyProvider", options))
    fake_arkesel.next_codes.append("O0I1QZ")
    response = password_step(client)
    assert response.status_code == 302
    assert fake_arkesel.last.json["type"] == "alphanumeric"
    page = client.get(response["Location"])
    assert 'inputmode="text"' in page.content.decode()
    response = client.post("/account/login/verify/", {"code": "o0i1-qz"})
    assert response.status_code == 302
    assert fake_arkesel.last.json["code"] == "O0I1QZ"
    assert Challenge.objects.get().status == ChallengeStatus.VERIFIED


@pytest.mark.django_db
def test_hosted_check_outage_refuses_without_counting_an_attempt(
    client, user, fake_arkesel, use_providers
):
    use_providers(
        default=("otp_auth.providers.arkesel.VerifyProvider", arkesel_options(fake_arkesel))
    )
    password_step(client)
    code = fake_arkesel.codes["233241234567"][0]
    fake_arkesel.script(Reply(503, body="down"))
    response = client.post("/account/login/verify/", {"code": code})
    assert response.status_code == 200  # the code page again, with the generic error
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.attempts) == (ChallengeStatus.PENDING, 0)
    assert client.post("/account/login/verify/", {"code": code}).status_code == 302


@pytest.mark.django_db
def test_balance_problem_is_generic_for_the_user_and_audited_for_operators(
    client, user, fake_arkesel, use_providers, caplog
):
    from otp_auth.signals import delivery_failed

    received = []

    def receiver(sender, challenge, attempt, **kwargs):
        received.append((challenge.pk, attempt.error_code, attempt.vendor_code))

    delivery_failed.connect(receiver)
    try:
        use_providers(
            default=("otp_auth.providers.arkesel.VerifyProvider", arkesel_options(fake_arkesel))
        )
        fake_arkesel.script(result("1007"))
        response = password_step(client)
    finally:
        delivery_failed.disconnect(receiver)
    assert response.status_code == 200
    assert "We could not send your code right now" in response.content.decode()
    assert "balance" not in response.content.decode().lower()
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.failure_reason) == (
        ChallengeStatus.SEND_FAILED,
        "provider_account",
    )
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.outcome, attempt.error_code, attempt.vendor_code, attempt.detail) == (
        "failed",
        "provider_account",
        "1007",
        "Arkesel 1007: insufficient balance",
    )
    assert received == [(challenge.pk, "provider_account", "1007")]
    assert any(
        r.levelname == "ERROR" and "needs an operator" in r.getMessage() for r in caplog.records
    )


@pytest.mark.django_db
def test_invalid_number_at_enrollment_is_a_form_error(client, user, fake_arkesel, use_providers):
    from tests.conftest import login_fully

    login_fully(client)  # with the locmem provider
    use_providers(default=("otp_auth.providers.arkesel.SMSProvider", arkesel_options(fake_arkesel)))
    fake_arkesel.invalid_numbers.add("233201234567")
    response = client.post(
        "/account/devices/add/", {"channel": "sms", "destination": "020 123 4567", "name": "Work"}
    )
    assert response.status_code == 200
    assert "This number cannot receive codes" in response.content.decode()
