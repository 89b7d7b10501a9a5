"""Against the real vendors. Each test runs only when its credentials are in the
environment, and skips otherwise; run them on purpose with ``pytest -m live``.

* Arkesel: ``ARKESEL_API_KEY``, ``ARKESEL_SENDER_ID`` and ``OTP_LIVE_PHONE`` (a number you
  own, E.164). Sends one real SMS and one real OTP.
* Twilio: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_FROM_NUMBER`` and
  ``OTP_LIVE_PHONE``; with Twilio's test credentials use ``TWILIO_FROM_NUMBER=+15005550006``
  and nothing is delivered or billed. Verify also needs ``TWILIO_VERIFY_SERVICE_SID``.
"""

from __future__ import annotations

import os

import pytest

from otp_auth.exceptions import ProviderAccountError
from otp_auth.providers import HostedVerification, OTPMessage, arkesel, twilio

pytestmark = pytest.mark.live


def need(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live test: set {', '.join(missing)} to run it")
    return {n: os.environ[n] for n in names}


def message(to: str) -> OTPMessage:
    return OTPMessage(
        destination=to,
        text="otp_auth live test: delivery works. No action is needed.",
        channel="sms",
        purpose="test",
    )


def verification(to: str) -> HostedVerification:
    return HostedVerification(destination=to, channel="sms", purpose="test", code_length=6, ttl=300)


def test_arkesel_sms():
    env = need("ARKESEL_API_KEY", "ARKESEL_SENDER_ID", "OTP_LIVE_PHONE")
    provider = arkesel.SMSProvider(
        alias="live", api_key=env["ARKESEL_API_KEY"], sender_id=env["ARKESEL_SENDER_ID"]
    )
    result = provider.send(message(env["OTP_LIVE_PHONE"]))
    assert result.status == "queued"
    assert result.reference


def test_arkesel_otp_start_and_wrong_code():
    env = need("ARKESEL_API_KEY", "ARKESEL_SENDER_ID", "OTP_LIVE_PHONE")
    provider = arkesel.VerifyProvider(
        alias="live", api_key=env["ARKESEL_API_KEY"], sender_id=env["ARKESEL_SENDER_ID"]
    )
    assert provider.start(verification(env["OTP_LIVE_PHONE"])).raw_status == "1000"
    assert provider.check("", env["OTP_LIVE_PHONE"], "000000") is False


def test_arkesel_bad_key_is_an_account_error():
    env = need("ARKESEL_API_KEY", "OTP_LIVE_PHONE")
    provider = arkesel.SMSProvider(alias="live", api_key="not-a-key", sender_id="Test")
    with pytest.raises(ProviderAccountError):
        provider.send(message(env["OTP_LIVE_PHONE"]))


def test_twilio_sms():
    env = need("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "OTP_LIVE_PHONE")
    provider = twilio.SMSProvider(
        alias="live",
        account_sid=env["TWILIO_ACCOUNT_SID"],
        auth_token=env["TWILIO_AUTH_TOKEN"],
        from_number=env["TWILIO_FROM_NUMBER"],
    )
    result = provider.send(message(env["OTP_LIVE_PHONE"]))
    assert result.reference.startswith("SM")


def test_twilio_verify_start_and_wrong_code():
    env = need(
        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_VERIFY_SERVICE_SID", "OTP_LIVE_PHONE"
    )
    provider = twilio.VerifyProvider(
        alias="live",
        account_sid=env["TWILIO_ACCOUNT_SID"],
        auth_token=env["TWILIO_AUTH_TOKEN"],
        service_sid=env["TWILIO_VERIFY_SERVICE_SID"],
    )
    result = provider.start(verification(env["OTP_LIVE_PHONE"]))
    assert result.reference.startswith("VE")
    assert provider.check(result.reference, env["OTP_LIVE_PHONE"], "000000") is False
