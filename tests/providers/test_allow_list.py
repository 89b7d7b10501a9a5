"""The country allow-list is checked before any SMS or voice send (R90)."""

from __future__ import annotations

import pytest

from otp_auth.constants import ChallengeStatus
from otp_auth.exceptions import CountryNotAllowedError
from otp_auth.models import Challenge, DeliveryAttempt, Device
from otp_auth.services import issue_challenge, resend_challenge
from otp_auth.services.delivery import check_destination_allowed
from tests.conftest import password_step

from .conftest import arkesel_options

pytestmark = pytest.mark.django_db

ARKESEL = "otp_auth.providers.arkesel.SMSProvider"


@pytest.fixture
def ghana_only(use_providers, fake_arkesel):
    use_providers({"ALLOWED_COUNTRIES": ["GH"]}, default=(ARKESEL, arkesel_options(fake_arkesel)))


def test_number_outside_the_list_never_reaches_the_provider(
    client, make_user, ghana_only, fake_arkesel
):
    # A device added before the list changed (or written directly): still refused.
    make_user(phone="+14155550100")
    response = password_step(client)
    assert response.status_code == 200
    assert "We could not send your code right now" in response.content.decode()
    assert fake_arkesel.requests == []
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.failure_reason) == (
        ChallengeStatus.SEND_FAILED,
        "country_not_allowed",
    )
    assert not DeliveryAttempt.objects.exists()


def test_number_inside_the_list_is_sent(client, user, ghana_only, fake_arkesel):
    assert password_step(client).status_code == 302
    assert len(fake_arkesel.sent) == 1


def test_voice_is_checked_too_and_email_is_not(ghana_only, fake_arkesel, make_user, settings):
    user = make_user(phone="+14155550100", email="alice@example.com")
    phone = Device.objects.get(user=user, email="")
    with pytest.raises(CountryNotAllowedError):
        issue_challenge(user=user, device=phone, purpose="login", channel="voice")
    mail = Device.objects.get(user=user, phone_number="")
    issue_challenge(user=user, device=mail, purpose="login", channel="email")
    assert fake_arkesel.requests == []


def test_resend_is_checked_again(user, use_providers, fake_arkesel, settings):
    use_providers({"RESEND_COOLDOWN": 0}, default=(ARKESEL, arkesel_options(fake_arkesel)))
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose="login")
    settings.OTP_AUTH = {**settings.OTP_AUTH, "ALLOWED_COUNTRIES": ["NG"]}
    with pytest.raises(CountryNotAllowedError):
        resend_challenge(challenge.public_id, user=user)
    assert len(fake_arkesel.requests) == 1
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.SEND_FAILED


@pytest.mark.parametrize(
    ("allowed", "channel", "destination", "ok"),
    [
        (None, "sms", "+14155550100", True),
        (["GH"], "sms", "+233241234567", True),
        (["GH"], "sms", "+14155550100", False),
        (["GH", "US"], "voice", "+14155550100", True),
        (["GH"], "sms", "not a number", False),
        (["GH"], "email", "a@example.com", True),
    ],
)
def test_check_destination_allowed(settings, allowed, channel, destination, ok):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "ALLOWED_COUNTRIES": allowed}
    if ok:
        check_destination_allowed(channel, destination)
    else:
        with pytest.raises(CountryNotAllowedError):
            check_destination_allowed(channel, destination)
