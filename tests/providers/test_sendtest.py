"""``manage.py otp_auth_sendtest``: checks a deployment's credentials end to end."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.fakes import Reply
from tests.fakes.arkesel import result

from .conftest import arkesel_options, twilio_options

ARKESEL = "otp_auth.providers.arkesel.SMSProvider"
ARKESEL_VERIFY = "otp_auth.providers.arkesel.VerifyProvider"
TWILIO = "otp_auth.providers.twilio.SMSProvider"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("otp_auth_sendtest", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_sends_a_message_without_a_code(use_providers, fake_arkesel):
    use_providers(ark=(ARKESEL, arkesel_options(fake_arkesel)), default=(ARKESEL, {}))
    output = run("0241234567", "--alias", "ark")
    sms = fake_arkesel.sent[0]
    assert sms.recipient == "233241234567"
    assert "Test message" in sms.text
    assert not re.search(r"\d{4,}", sms.text)
    assert "Sending a sms test through 'ark' (arkesel)" in output
    assert f"OK queued via arkesel, reference {sms.id}" in output


def test_default_alias_serves_the_channel(use_providers, fake_twilio):
    use_providers(default=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")))
    output = run("+233241234567", "--channel", "voice")
    assert fake_twilio.outgoing[0].kind == "call"
    assert "OK queued via twilio" in output


def test_failure_is_reported_without_secrets(use_providers, fake_arkesel):
    use_providers(default=(ARKESEL, arkesel_options(fake_arkesel)))
    fake_arkesel.script(Reply(402, {"status": "error", "message": "Insufficient balance"}))
    with pytest.raises(CommandError) as info:
        run("+233241234567")
    message = str(info.value)
    assert message.startswith("FAILED provider_account: Arkesel: insufficient balance")
    assert "status=402" in message
    assert fake_arkesel.api_key not in message


def test_routing_prints_each_attempt(use_providers, fake_arkesel, fake_twilio):
    use_providers(
        default=("otp_auth.providers.routing.SMSProvider", {"providers": ["ark", "tw"]}),
        ark=(ARKESEL, arkesel_options(fake_arkesel)),
        tw=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    fake_arkesel.script(Reply(402, {"status": "error", "message": "Insufficient balance"}))
    output = run("+233241234567")
    assert "attempt 1: ark (arkesel) failed provider_account HTTP 402" in output
    assert "attempt 2: tw (twilio) accepted" in output
    assert "OK queued via twilio" in output


def test_hosted_verify_starts_a_real_verification(use_providers, fake_arkesel):
    use_providers(default=(ARKESEL_VERIFY, arkesel_options(fake_arkesel)))
    output = run("+233241234567")
    assert "OK queued via arkesel" in output
    assert fake_arkesel.last.path == "/api/otp/generate"
    assert "233241234567" in fake_arkesel.codes


def test_hosted_verify_check_reads_the_code_from_stdin(use_providers, fake_arkesel, monkeypatch):
    use_providers(default=(ARKESEL_VERIFY, arkesel_options(fake_arkesel)))

    class Stdin(io.StringIO):
        def readline(self, *args: object) -> str:  # the code arrives after the send
            return fake_arkesel.codes["233241234567"][0] + "\n"

    monkeypatch.setattr("sys.stdin", Stdin())
    output = run("+233241234567", "--check")
    assert "APPROVED: the provider accepted the code." in output
    assert fake_arkesel.last.path == "/api/otp/verify"

    monkeypatch.setattr("sys.stdin", io.StringIO("000000\n"))
    fake_arkesel.script(result("1000"), result("1104"))
    with pytest.raises(CommandError, match="REFUSED"):
        run("+233241234567", "--check")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["12345"], "invalid_destination"),
        (["+233241234567", "--alias", "nope"], "no alias 'nope'"),
        (["+233241234567", "--channel", "voice", "--alias", "ark"], "does not serve the voice"),
    ],
)
def test_bad_invocations(use_providers, fake_arkesel, args, message):
    use_providers(
        default=(ARKESEL, arkesel_options(fake_arkesel)),
        ark=(ARKESEL, arkesel_options(fake_arkesel)),
    )
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert fake_arkesel.requests == []


def test_allow_list_applies(use_providers, fake_arkesel):
    use_providers({"ALLOWED_COUNTRIES": ["NG"]}, default=(ARKESEL, arkesel_options(fake_arkesel)))
    with pytest.raises(CommandError, match="invalid_destination|country_not_allowed"):
        run("+233241234567")
    assert fake_arkesel.requests == []
