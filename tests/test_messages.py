"""SMS quality: one GSM-7 segment per code, origin-bound codes and the Android app hash."""

from __future__ import annotations

from typing import Any

import pytest

from otp_auth.checks import check_messages
from otp_auth.constants import Channel, Purpose
from otp_auth.exceptions import ConfigurationError
from otp_auth.providers import locmem
from otp_auth.services.delivery import render_text, sms_units
from tests.conftest import last_code, otp_settings, password_step


def ids(**otp_auth: Any) -> list[str]:
    with otp_settings(**otp_auth):
        return [m.id or "" for m in check_messages()]


@pytest.mark.parametrize("purpose", Purpose.values)
def test_every_default_sms_fits_one_gsm7_segment(purpose):
    with otp_settings(SITE_NAME="Example Bank", CODE_ALPHABET="alphanumeric", CODE_LENGTH=8):
        text = render_text(purpose, Channel.SMS, "W" * 8)
    encoding, length, offending = sms_units(text)
    assert (encoding, offending) == ("gsm7", [])
    assert length <= 160, text


def test_default_settings_give_no_message_warning():
    assert ids(SITE_NAME="Example") == []


def test_curly_quote_in_site_name_warns_about_ucs2_and_the_second_segment():
    """One curly quote turns each message into UCS-2, where its ~90 characters take two
    segments (70 each): twice the cost."""
    found = ids(SITE_NAME="Ama\u2019s Shop")
    assert found.count("otp_auth.W061") == len(Purpose.values)
    assert found.count("otp_auth.W060") == len(Purpose.values)


def test_accent_outside_gsm7_warns_but_gsm7_accents_do_not():
    assert "otp_auth.W061" in ids(SITE_NAME="Caf\u00e9 Zo\u00eb")
    assert ids(SITE_NAME="Caf\u00e9 M\u00fcller") == []  # é and ü are GSM-7


def test_long_site_name_warns_about_a_second_segment():
    found = ids(SITE_NAME="The Very Long Name Of An Example Savings And Loans Cooperative Ltd")
    assert "otp_auth.W060" in found


def test_ucs2_halves_the_segment():
    encoding, length, offending = sms_units("\u201cHi\u201d " + "x" * 70)
    assert (encoding, length, offending) == ("ucs2", 75, ["\u201c", "\u201d"])
    assert sms_units("{[x]}")[1] == 9  # extension characters cost two septets


def test_origin_bound_line_and_app_hash_end_the_sms():
    with otp_settings(SITE_NAME="Example", SMS_ORIGIN="Example.com", SMS_APP_HASH="FA+9qCX9VSu"):
        text = render_text(Purpose.LOGIN, Channel.SMS, "123456")
        voice = render_text(Purpose.LOGIN, Channel.VOICE, "123456")
    lines = text.splitlines()
    assert lines[-2:] == ["FA+9qCX9VSu", "@example.com #123456"]
    assert lines[0].startswith("Your Example code is 123456.")
    assert "@example.com" not in voice


@pytest.mark.django_db
def test_login_sms_carries_the_origin_bound_line(client, user):
    with otp_settings(SMS_ORIGIN="example.com"):
        assert password_step(client).status_code == 302
    assert locmem.outbox[-1].text.splitlines()[-1] == f"@example.com #{last_code()}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMS_ORIGIN", "https://example.com"),
        ("SMS_ORIGIN", "example.com:443"),
        ("SMS_ORIGIN", "localhost"),
        ("SMS_ORIGIN", "exa mple.com"),
        ("SMS_APP_HASH", "short"),
        ("SMS_APP_HASH", "FA+9qCX9VS!"),
    ],
)
def test_malformed_origin_or_hash_is_e060(name, value):
    assert ids(**{name: value}) == ["otp_auth.E060"]
    with otp_settings(**{name: value}), pytest.raises(ConfigurationError, match=name):
        render_text(Purpose.LOGIN, Channel.SMS, "123456")
