"""Twilio against its fake server: Messaging, Voice and Verify v2."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from otp_auth.constants import ChallengeStatus
from otp_auth.exceptions import (
    ConfigurationError,
    DestinationBlockedError,
    InvalidNumberError,
    ProviderAccountError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderRouteError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from otp_auth.models import Challenge
from otp_auth.providers import HostedVerification, OTPMessage
from otp_auth.providers.twilio import SMSProvider, VerifyProvider
from tests.conftest import password_step
from tests.fakes import Reply
from tests.fakes.twilio import error

from .conftest import WEBHOOK_BASE, code_in, twilio_options

NUMBER = "+233241234567"


def message(text: str = "Your code is 123456.", channel: str = "sms") -> OTPMessage:
    return OTPMessage(destination=NUMBER, text=text, channel=channel, purpose="login")


def verification(channel: str = "sms", destination: str = NUMBER) -> HostedVerification:
    return HostedVerification(
        destination=destination, channel=channel, purpose="login", code_length=6, ttl=600
    )


def basic(fake) -> str:
    return "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()


# Messaging -------------------------------------------------------------------------------


def test_sms_request_on_the_wire(fake_twilio):
    provider = SMSProvider(alias="tw", **twilio_options(fake_twilio, from_number="+15005550006"))
    outcome = provider.send(message())

    request = fake_twilio.last
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.headers["authorization"] == basic(fake_twilio)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form_lists == {
        "To": ["+233241234567"],
        "From": ["+15005550006"],
        "Body": ["Your code is 123456."],
    }
    sent = fake_twilio.outgoing[0]
    assert (outcome.provider, outcome.status, outcome.raw_status) == ("twilio", "queued", "queued")
    assert outcome.reference == sent.sid
    assert sent.sid.startswith("SM")


def test_messaging_service_validity_and_status_callback(fake_twilio, settings):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": WEBHOOK_BASE}
    provider = SMSProvider(
        alias="tw",
        **twilio_options(fake_twilio, messaging_service_sid="MG" + "2" * 32, validity_period=600),
    )
    provider.send(message())
    form = fake_twilio.last.form
    assert form["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in form
    assert form["ValidityPeriod"] == "600"
    assert form["StatusCallback"] == f"{WEBHOOK_BASE}/account/webhooks/tw/"


@pytest.mark.django_db
def test_login_sms_expires_in_the_queue_with_the_code(client, user, use_providers, fake_twilio):
    """Without ValidityPeriod, Twilio may hold a queued SMS for 10 hours: long after the
    code in it expired."""
    use_providers(
        default=(
            "otp_auth.providers.twilio.SMSProvider",
            twilio_options(fake_twilio, from_number="+15005550006"),
        ),
        extra={"CODE_TTL": 300},
    )
    assert password_step(client).status_code == 302
    assert fake_twilio.last.form["ValidityPeriod"] == "300"


def test_validity_period_is_clamped_to_what_twilio_accepts(fake_twilio):
    provider = SMSProvider(alias="tw", **twilio_options(fake_twilio, from_number="+15005550006"))
    long_lived = OTPMessage(
        destination=NUMBER, text="Your code is 123456.", channel="sms", purpose="login", ttl=86_400
    )
    provider.send(long_lived)
    assert fake_twilio.last.form["ValidityPeriod"] == "36000"


def test_voice_code_travels_in_the_body_never_in_a_url(fake_twilio, settings):
    """R19: the TwiML with the code is a request parameter; no URL Twilio fetches has it."""
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": WEBHOOK_BASE}
    provider = SMSProvider(
        alias="tw",
        **twilio_options(
            fake_twilio, from_number="+15005550006", voice="Polly.Amy", voice_language="en-GB"
        ),
    )
    outcome = provider.send(message("Your code is 1, 2, 3, 4, 5, 6. <again> & again", "voice"))

    request = fake_twilio.last
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls.json"
    form = request.form
    assert form["To"] == NUMBER
    assert form["From"] == "+15005550006"
    assert form["Twiml"] == (
        '<Response><Say voice="Polly.Amy" language="en-GB">'
        "Your code is 1, 2, 3, 4, 5, 6. &lt;again&gt; &amp; again</Say></Response>"
    )
    assert "Url" not in form
    assert "1, 2, 3" not in request.path and not request.query
    for value in form.values():
        if value.startswith("http"):
            parts = urlsplit(value)
            assert "1, 2, 3" not in parts.path and "123456" not in value
            assert not parse_qs(parts.query)
    assert form["StatusCallback"] == f"{WEBHOOK_BASE}/account/webhooks/tw/"
    assert outcome.reference.startswith("CA")


def test_voice_without_a_from_number_is_a_configuration_error(fake_twilio):
    provider = SMSProvider(alias="tw", **twilio_options(fake_twilio, messaging_service_sid="MG1"))
    with pytest.raises(ProviderAccountError) as info:
        provider.send(message(channel="voice"))
    assert info.value.reason == "configuration"
    assert fake_twilio.requests == []


def test_options_are_validated(fake_twilio):
    with pytest.raises(ConfigurationError, match="from_number"):
        SMSProvider(alias="tw", **twilio_options(fake_twilio))
    with pytest.raises(ConfigurationError, match="auth_token"):
        SMSProvider(alias="tw", account_sid="AC1", from_number="+15005550006")
    with pytest.raises(ConfigurationError, match="service_sid"):
        VerifyProvider(alias="tw", **twilio_options(fake_twilio))
    with pytest.raises(ConfigurationError, match="channel_map"):
        VerifyProvider(
            alias="tw", **twilio_options(fake_twilio, service_sid="VA1", channel_map={"sms": "fax"})
        )


MESSAGE_ERRORS = [
    (20003, ProviderAccountError, "authentication"),
    (20429, ProviderRateLimitError, None),
    (21211, InvalidNumberError, None),
    (21212, ProviderAccountError, "sender"),
    (21408, DestinationBlockedError, None),
    (21606, ProviderAccountError, "sender"),
    (21608, ProviderAccountError, "configuration"),
    (21610, DestinationBlockedError, None),
    (21401, ProviderAccountError, "sender"),  # the sender, not the user's number
    (21407, ProviderAccountError, "sender"),
    (21612, ProviderRouteError, None),  # To/From pair: another vendor may deliver
    (21614, InvalidNumberError, None),
    (21635, InvalidNumberError, None),
    (30999, ProviderRejectedError, None),  # unknown code: by HTTP status (400)
]


@pytest.mark.parametrize(("code", "cls", "reason"), MESSAGE_ERRORS)
def test_message_error_codes_are_mapped(fake_twilio, code, cls, reason):
    fake_twilio.script(error(code, "The 'To' number +233241234567 is refused"))
    provider = SMSProvider(alias="tw", **twilio_options(fake_twilio, from_number="+15005550006"))
    with pytest.raises(cls) as info:
        provider.send(message())
    assert type(info.value) is cls
    assert info.value.vendor_code == str(code)
    assert info.value.provider == "twilio"
    if reason:
        assert info.value.reason == reason


def test_wrong_credentials_against_the_fake(fake_twilio):
    provider = SMSProvider(
        alias="tw",
        **twilio_options(fake_twilio, auth_token="wrong-token-0000", from_number="+15005550006"),
    )
    with pytest.raises(ProviderAccountError) as info:
        provider.send(message())
    assert (info.value.vendor_code, info.value.status) == ("20003", 401)
    assert "wrong-token-0000" not in info.value.response


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (Reply(500, error(20500).json), ProviderTimeoutError),  # may follow acceptance
        (Reply(502, body="Bad Gateway"), ProviderTimeoutError),
        (Reply(504, body="Gateway Timeout"), ProviderTimeoutError),
        (Reply(503, body="Service Unavailable"), ProviderUnavailableError),  # not processed
        (Reply(201, body="{not json"), ProviderResponseError),
        (Reply(201, {"status": "queued"}), ProviderResponseError),  # no sid
        (Reply(201, {"sid": "SM1", "status": "queued"}, delay=1.0), ProviderTimeoutError),
        (Reply(drop=True), ProviderTimeoutError),
        (Reply(429, {"code": 20429, "message": "Too Many Requests"}), ProviderRateLimitError),
    ],
)
def test_message_transport_failures(fake_twilio, reply, cls):
    fake_twilio.script(reply)
    provider = SMSProvider(alias="tw", **twilio_options(fake_twilio, from_number="+15005550006"))
    with pytest.raises(cls):
        provider.send(message())
    assert len(fake_twilio.requests) == 1


# Verify ----------------------------------------------------------------------------------


def verify_provider(fake, **extra) -> VerifyProvider:
    return VerifyProvider(alias="tv", **twilio_options(fake, service_sid=fake.service_sid, **extra))


def test_start_and_check_on_the_wire(fake_twilio):
    provider = verify_provider(fake_twilio, locale="fr")
    outcome = provider.start(verification())

    request = fake_twilio.last
    assert request.method == "POST"
    assert request.path == f"/v2/Services/{fake_twilio.service_sid}/Verifications"
    assert request.headers["authorization"] == basic(fake_twilio)
    assert request.form_lists == {"To": [NUMBER], "Channel": ["sms"], "Locale": ["fr"]}
    assert outcome.reference.startswith("VE")
    assert (outcome.status, outcome.raw_status) == ("sent", "pending")

    code = fake_twilio.code_for(NUMBER)
    wrong = "000000" if code != "000000" else "111111"
    assert provider.check(outcome.reference, NUMBER, wrong) is False  # 200 "pending"
    request = fake_twilio.last
    assert request.path == f"/v2/Services/{fake_twilio.service_sid}/VerificationCheck"
    assert request.form_lists == {"Code": [wrong], "VerificationSid": [outcome.reference]}
    assert provider.check(outcome.reference, NUMBER, code) is True
    # Approved verifications are deleted by Twilio: checking again is a 404, so False.
    assert provider.check(outcome.reference, NUMBER, code) is False


@pytest.mark.parametrize(
    ("channel", "destination", "expected"),
    [("voice", NUMBER, "call"), ("email", "alice@example.com", "email")],
)
def test_channels_map_to_verify_channels(fake_twilio, channel, destination, expected):
    verify_provider(fake_twilio).start(verification(channel, destination))
    assert fake_twilio.last.form == {"To": destination, "Channel": expected}


def test_whatsapp_through_the_channel_map(fake_twilio):
    verify_provider(fake_twilio, channel_map={"sms": "whatsapp"}).start(verification())
    assert fake_twilio.last.form["Channel"] == "whatsapp"


def test_check_by_number_when_no_reference(fake_twilio):
    provider = verify_provider(fake_twilio)
    provider.start(verification())
    assert provider.check("", NUMBER, fake_twilio.code_for(NUMBER)) is True
    assert fake_twilio.last.form_lists["To"] == [NUMBER]


def test_number_without_plus_is_an_invalid_number(fake_twilio):
    with pytest.raises(InvalidNumberError) as info:
        verify_provider(fake_twilio).start(verification(destination="233241234567"))
    assert info.value.vendor_code == "60200"


def test_sixth_send_is_rate_limited(fake_twilio):
    provider = verify_provider(fake_twilio)
    for _ in range(5):
        provider.start(verification())
    with pytest.raises(ProviderRateLimitError) as info:
        provider.start(verification())
    assert (info.value.vendor_code, info.value.status) == ("60203", 429)


def test_too_many_wrong_checks_is_a_refusal(fake_twilio):
    provider = verify_provider(fake_twilio)
    sid = provider.start(verification()).reference
    code = fake_twilio.code_for(NUMBER)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert provider.check(sid, NUMBER, wrong) is False
    assert provider.check(sid, NUMBER, code) is False  # 429 / 60202: locked at Twilio
    assert fake_twilio.last.form["Code"] == code


START_ERRORS = [
    (60200, "Invalid parameter: Channel", ProviderRejectedError),
    (60200, "Invalid parameter: To", InvalidNumberError),
    (60203, "Max send attempts reached", ProviderRateLimitError),
    (60212, "Too many concurrent requests", ProviderRateLimitError),
    (60410, "Verification delivery attempt blocked", DestinationBlockedError),
    (60605, "Verification blocked by geo permissions", DestinationBlockedError),
    (60238, "Verification blocked by Twilio", DestinationBlockedError),
    (60033, "Invalid phone number", InvalidNumberError),
    (60006, "Invalid Phone Number", InvalidNumberError),
    (60413, "Verification blocked", DestinationBlockedError),
    (20404, "The requested resource was not found", ProviderAccountError),
    (20003, "Authenticate", ProviderAccountError),
    (20429, "Too Many Requests", ProviderRateLimitError),
]


@pytest.mark.parametrize(("code", "text", "cls"), START_ERRORS)
def test_verify_start_errors_are_mapped(fake_twilio, code, text, cls):
    fake_twilio.script(error(code, text))
    with pytest.raises(cls) as info:
        verify_provider(fake_twilio).start(verification())
    assert type(info.value) is cls
    assert info.value.vendor_code == str(code)


def test_verify_start_404_is_a_configuration_error(fake_twilio):
    """Against the fake, a wrong service sid is a 404/20404 (not a refused code)."""
    provider = VerifyProvider(
        alias="tw", **twilio_options(fake_twilio, service_sid="VA" + "9" * 32)
    )
    with pytest.raises(ProviderAccountError, match="service_sid") as info:
        provider.start(verification())
    assert info.value.reason == "configuration"


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (error(20404, "Not found"), False),
        (error(60202, "Max check attempts reached"), False),
        (Reply(200, {"sid": "VE1", "status": "canceled"}), False),
        (Reply(200, {"sid": "VE1", "status": "expired"}), False),
        (error(60221, "No target verification specified"), ProviderRejectedError),
        (error(20003, "Authenticate"), ProviderAccountError),
        (Reply(502, body=""), ProviderTimeoutError),
        (Reply(503, body=""), ProviderUnavailableError),
        (Reply(200, {"sid": "VE1"}), ProviderResponseError),
        (Reply(200, body="oops"), ProviderResponseError),
        (Reply(200, {"status": "approved"}, delay=1.0), ProviderTimeoutError),
    ],
)
def test_verify_check_replies(fake_twilio, reply, outcome):
    fake_twilio.script(reply)
    provider = verify_provider(fake_twilio)
    if isinstance(outcome, bool):
        assert provider.check("VE1", NUMBER, "123456") is outcome
    else:
        with pytest.raises(outcome) as info:
            provider.check("VE1", NUMBER, "123456")
        assert "123456" not in info.value.response


# Through the login flow ------------------------------------------------------------------


@pytest.mark.django_db
def test_login_with_deliver_only_twilio(client, user, fake_twilio, use_providers):
    use_providers(
        default=(
            "otp_auth.providers.twilio.SMSProvider",
            twilio_options(fake_twilio, from_number="+15005550006"),
        )
    )
    assert password_step(client).status_code == 302
    sent = fake_twilio.outgoing[-1]
    assert sent.to == NUMBER
    challenge = Challenge.objects.get()
    assert (challenge.provider_reference, challenge.delivery_status) == (sent.sid, "queued")
    response = client.post(
        "/account/login/verify/",
        {"code": code_in(sent.params["Body"])},
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_login_with_twilio_verify(client, user, fake_twilio, use_providers):
    use_providers(
        default=(
            "otp_auth.providers.twilio.VerifyProvider",
            twilio_options(fake_twilio, service_sid=fake_twilio.service_sid),
        )
    )
    assert password_step(client).status_code == 302
    challenge = Challenge.objects.get()
    assert challenge.provider_reference.startswith("VE")
    assert challenge.code_hash == ""
    response = client.post("/account/login/verify/", {"code": fake_twilio.code_for(NUMBER)})
    assert response.status_code == 302
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.VERIFIED
    assert fake_twilio.last.form["VerificationSid"] == challenge.provider_reference
