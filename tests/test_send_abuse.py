"""Sends that a password alone can trigger: enrollment caps, refused number types, email
codes per purpose, and reset requests that cost an address the same with or without an
account."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from django.test import Client

from otp_auth.conf import app_settings
from otp_auth.constants import Purpose
from otp_auth.exceptions import CountryNotAllowedError, DeviceError, InvalidDestinationError
from otp_auth.models import AuditEvent, Device
from otp_auth.providers import locmem
from otp_auth.services import delivery, limits
from otp_auth.services.challenges import issue_challenge
from otp_auth.services.devices import parse_phone_number
from tests.conftest import otp_settings, password_step

pytestmark = pytest.mark.django_db

DEVICE_ADD = "/account/devices/add/"


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+2332412{i:05d}" for i in range(start, start + count)]


def enrolling(make_user: Any, username: str, address: str) -> Client:
    """A signed-in, password-only user (no factor yet) on ``address``."""
    make_user(username, phone=None)
    client = Client(REMOTE_ADDR=address)
    assert password_step(client, username).status_code == 302
    return client


def add_phone(client: Client, number: str) -> Any:
    return client.post(DEVICE_ADD, {"channel": "sms", "destination": number})


def sent(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].endswith("/devices/confirm/")


# Enrollment caps --------------------------------------------------------------------------


def test_one_account_gets_five_enrollment_codes_a_day(make_user):
    client = enrolling(make_user, "mallory", "198.51.100.20")
    answers = [add_phone(client, n) for n in numbers(6)]
    assert [sent(a) for a in answers] == [True] * 5 + [False]
    assert len(locmem.outbox) == 5
    row = AuditEvent.objects.filter(kind=AuditEvent.Kind.RATE_LIMITED).latest("pk")
    assert row.reason in ("enroll_send_per_user", "enroll_send_per_ip")


def test_many_accounts_on_one_address_share_its_enrollment_budget(make_user):
    clients = [enrolling(make_user, f"m{i}", "198.51.100.21") for i in range(3)]
    results = [sent(add_phone(c, n)) for c in clients for n in numbers(2, 10 * clients.index(c))]
    assert results == [True] * 5 + [False]
    assert AuditEvent.objects.filter(reason="enroll_send_per_ip").exists()
    # Another address is not affected.
    other = enrolling(make_user, "honest", "203.0.113.21")
    assert sent(add_phone(other, numbers(1, 90)[0]))


def test_a_site_wide_enrollment_budget_caps_many_addresses(make_user):
    with otp_settings(RATE_LIMITS={"enroll_send_budget": "3/h"}):
        results = [
            sent(add_phone(enrolling(make_user, f"u{i}", f"198.51.100.{30 + i}"), n))
            for i, n in enumerate(numbers(4))
        ]
    assert results == [True, True, True, False]
    assert AuditEvent.objects.filter(reason="enroll_send_budget").exists()


def test_sign_in_codes_do_not_spend_the_enrollment_budget(make_user):
    make_user("alice")
    with otp_settings(RATE_LIMITS={"enroll_send_budget": "1/h"}):
        for _ in range(3):
            client = Client()
            assert password_step(client)["Location"] == "/account/login/verify/"
        assert limits.current("enroll_send_budget", "all") == {"1/h": 0}


# Number types ---------------------------------------------------------------------------


def _number_of_type(region: str, kind: int) -> str:
    """An example number of ``kind``, from ``region`` or else the first region with one."""
    regions = [region, *sorted(phonenumbers.SUPPORTED_REGIONS)]
    example = next(
        (e for r in regions if (e := phonenumbers.example_number_for_type(r, kind))), None
    )
    assert example is not None
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def test_premium_rate_and_shared_cost_numbers_are_refused_at_enrollment():
    premium = _number_of_type("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE)
    shared = _number_of_type("GB", phonenumbers.PhoneNumberType.SHARED_COST)
    for number in (premium, shared):
        with pytest.raises(InvalidDestinationError):
            parse_phone_number(number)
    mobile = _number_of_type("GB", phonenumbers.PhoneNumberType.MOBILE)
    assert parse_phone_number(mobile) == mobile
    with otp_settings(REFUSED_NUMBER_TYPES=[]):
        assert parse_phone_number(premium) == premium


def test_a_device_on_a_premium_number_gets_no_sms_or_call(make_user):
    premium = _number_of_type("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE)
    user = make_user("pat", phone=premium)
    device = Device.objects.get(user=user)
    for channel in ("sms", "voice"):
        with pytest.raises(CountryNotAllowedError):
            delivery.check_destination_allowed(channel, device.phone_number)
    with pytest.raises(CountryNotAllowedError):
        issue_challenge(user=user, device=device, purpose=Purpose.LOGIN)
    assert locmem.outbox == []


def test_refused_number_types_are_validated():
    from django.core.exceptions import ImproperlyConfigured

    with otp_settings(REFUSED_NUMBER_TYPES=["PREMIUM"]), pytest.raises(ImproperlyConfigured):
        app_settings.REFUSED_NUMBER_TYPES  # noqa: B018


# Email codes per purpose ----------------------------------------------------------------


def test_email_codes_only_for_password_reset(make_user):
    user = make_user("erin", phone=None, email="erin@mail.example")
    device = Device.objects.get(user=user)
    with otp_settings(EMAIL_CODES_FOR=["password_reset"]):
        for purpose in (Purpose.LOGIN, Purpose.STEP_UP):
            with pytest.raises(DeviceError):
                issue_challenge(user=user, device=device, purpose=purpose)
        assert locmem.outbox == [] and not _emails()
        issue_challenge(user=user, device=device, purpose=Purpose.PASSWORD_RESET)
        # An address must be proven before it can receive reset codes.
        issue_challenge(user=user, device=device, purpose=Purpose.ENROLLMENT)
    assert len(_emails()) == 2
    # By default, every purpose may use email.
    issue_challenge(user=user, device=device, purpose=Purpose.LOGIN)
    assert len(_emails()) == 3


def test_email_codes_for_refuses_unknown_purposes():
    from django.core.exceptions import ImproperlyConfigured

    with otp_settings(EMAIL_CODES_FOR=["reset"]), pytest.raises(ImproperlyConfigured):
        app_settings.EMAIL_CODES_FOR  # noqa: B018


def _emails() -> list[Any]:
    from django.core import mail

    return list(mail.outbox)


# Reset requests cost an address the same, account or not ----------------------------------


def test_reset_requests_spend_the_address_budget_alike_for_known_and_unknown_accounts(
    make_user,
):
    make_user("alice")
    known, unknown = "198.51.100.40", "198.51.100.41"
    for address, identifier in ((known, "alice"), (unknown, "nobody")):
        client = Client(REMOTE_ADDR=address)
        for _ in range(3):
            client.post("/account/password-reset/", {"identifier": identifier})
    assert len(locmem.outbox) >= 1  # the known account did get its code
    for name in ("reset_per_ip", "send_per_ip"):
        assert limits.current(name, f"ip:{known}") == limits.current(name, f"ip:{unknown}"), name
    assert limits.current("send_per_ip", f"ip:{known}")["30/h"] == 3
