"""Routing and failover across the Arkesel and Twilio fakes; every attempt is audited."""

from __future__ import annotations

import socket

import pytest

from otp_auth.constants import ChallengeStatus
from otp_auth.exceptions import ConfigurationError, DeliveryError
from otp_auth.models import Challenge, DeliveryAttempt
from otp_auth.providers import OTPMessage, get_provider
from otp_auth.providers.routing import SMSProvider
from otp_auth.services import resend_challenge
from tests.conftest import password_step
from tests.fakes import Reply
from tests.fakes.arkesel import result
from tests.fakes.twilio import error

from .conftest import arkesel_options, code_in, twilio_options

ARKESEL = "otp_auth.providers.arkesel.SMSProvider"
TWILIO = "otp_auth.providers.twilio.SMSProvider"
ARKESEL_VERIFY = "otp_auth.providers.arkesel.VerifyProvider"
TWILIO_VERIFY = "otp_auth.providers.twilio.VerifyProvider"
ROUTER = "otp_auth.providers.routing.SMSProvider"
VERIFY_ROUTER = "otp_auth.providers.routing.VerifyProvider"
GHANA = "+233241234567"


@pytest.fixture
def routed(use_providers, fake_arkesel, fake_twilio):
    """``default`` routes SMS to Arkesel then Twilio; voice to Twilio only."""

    def configure(**router_options):
        options = {"routes": {"sms": ["arkesel", "twilio"], "voice": ["twilio"]}}
        options.update(router_options)
        use_providers(
            default=(ROUTER, options),
            arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
            twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
        )

    configure()
    return configure


def attempts() -> list[tuple[str, str, str, int | None]]:
    return [
        (a.provider_alias, a.outcome, a.error_code, a.http_status)
        for a in DeliveryAttempt.objects.order_by("pk")
    ]


pytestmark = pytest.mark.django_db


def test_first_provider_that_works_sends(client, user, routed, fake_arkesel, fake_twilio):
    assert password_step(client).status_code == 302
    assert len(fake_arkesel.sent) == 1
    assert fake_twilio.requests == []
    assert attempts() == [("arkesel", "accepted", "", None)]


NO_BALANCE = Reply(402, {"status": "error", "message": "Insufficient balance"})


def test_not_processed_server_error_fails_over_and_both_attempts_are_recorded(
    client, user, use_providers, fake_arkesel, fake_twilio
):
    use_providers(
        default=(ROUTER, {"providers": ["twilio", "arkesel"]}),
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    # Twilio documents its 503 as "not processed": the message may go elsewhere.
    fake_twilio.script(Reply(503, body="<h1>Service Unavailable</h1>"))
    assert password_step(client).status_code == 302

    assert len(fake_twilio.requests) == 1
    assert len(fake_arkesel.sent) == 1
    assert attempts() == [
        ("twilio", "failed", "provider_unavailable", 503),
        ("arkesel", "accepted", "", None),
    ]
    challenge = Challenge.objects.get()
    assert challenge.provider_alias == "default"
    assert challenge.provider_reference == fake_arkesel.sent[0].id
    assert challenge.status == ChallengeStatus.PENDING
    code = code_in(fake_arkesel.sent[0].text)
    assert client.post("/account/login/verify/", {"code": code}).status_code == 302


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_that_may_follow_acceptance_is_not_retried(
    client, user, routed, fake_arkesel, fake_twilio, status
):
    """Arkesel documents no 5xx as "not processed": a proxy's 502/504 (or a 500 after
    the write) may come after the message went out, so it counts as a timeout."""
    fake_arkesel.script(Reply(status, body="<h1>Bad Gateway</h1>"))
    assert password_step(client).status_code == 200
    assert fake_twilio.requests == []
    assert attempts() == [("arkesel", "unknown", "provider_timeout", status)]


def test_server_error_fails_over_when_timeouts_may(client, user, routed, fake_arkesel, fake_twilio):
    routed(failover_on_timeout=True)
    fake_arkesel.script(Reply(502, body=""))
    assert password_step(client).status_code == 302
    assert attempts() == [
        ("arkesel", "unknown", "provider_timeout", 502),
        ("twilio", "accepted", "", None),
    ]


def test_unroutable_pair_fails_over_to_another_vendor(
    client, user, use_providers, fake_arkesel, fake_twilio
):
    use_providers(
        default=(ROUTER, {"providers": ["twilio", "arkesel"]}),
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    fake_twilio.script(error(21612, "The 'To' and 'From' cannot be connected"))
    assert password_step(client).status_code == 302
    assert attempts() == [
        ("twilio", "failed", "provider_route", 400),
        ("arkesel", "accepted", "", None),
    ]


def test_vendor_internal_error_fails_over(client, user, use_providers, fake_arkesel, fake_twilio):
    use_providers(
        default=(VERIFY_ROUTER, {"providers": ["arkesel", "twilio"]}),
        arkesel=(ARKESEL_VERIFY, arkesel_options(fake_arkesel)),
        twilio=(TWILIO_VERIFY, twilio_options(fake_twilio, service_sid=fake_twilio.service_sid)),
    )
    fake_arkesel.script(result("1011"))  # "Internal error", in a 200
    assert password_step(client).status_code == 302
    assert attempts() == [
        ("arkesel", "failed", "provider_unavailable", 200),
        ("twilio", "accepted", "", None),
    ]
    challenge = Challenge.objects.get()
    assert challenge.provider_reference.startswith("twilio:VE")
    code = fake_twilio.code_for(GHANA)
    assert client.post("/account/login/verify/", {"code": code}).status_code == 302
    # The check went to Twilio, with Twilio's own reference.
    assert fake_twilio.last.form["VerificationSid"] == challenge.provider_reference[7:]
    assert [r.path for r in fake_arkesel.requests] == ["/api/otp/generate"]


def test_refused_connection_fails_over(client, user, use_providers, fake_twilio):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    use_providers(
        default=(ROUTER, {"providers": ["arkesel", "twilio"]}),
        arkesel=(
            ARKESEL,
            {"api_key": "k", "sender_id": "Example", "base_url": closed, "read_timeout": 0.2},
        ),
        twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    assert password_step(client).status_code == 302
    assert attempts() == [
        ("arkesel", "failed", "provider_unavailable", None),
        ("twilio", "accepted", "", None),
    ]


def test_read_timeout_does_not_fail_over(client, user, routed, fake_arkesel, fake_twilio):
    fake_arkesel.script(Reply(200, {"status": "success", "data": []}, delay=1.0))
    response = password_step(client)
    assert response.status_code == 200
    assert "We could not send your code right now" in response.content.decode()
    assert fake_twilio.requests == []  # the first vendor may have sent it: no second code
    assert attempts() == [("arkesel", "unknown", "provider_timeout", None)]
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.failure_reason) == (
        ChallengeStatus.SEND_FAILED,
        "provider_timeout",
    )


def test_dropped_connection_does_not_fail_over(client, user, routed, fake_arkesel, fake_twilio):
    fake_arkesel.script(Reply(drop=True))
    assert password_step(client).status_code == 200
    assert fake_twilio.requests == []
    assert attempts() == [("arkesel", "unknown", "provider_timeout", None)]


def test_timeout_fails_over_when_the_setting_allows(
    client, user, routed, fake_arkesel, fake_twilio
):
    routed(failover_on_timeout=True)
    fake_arkesel.script(Reply(200, {"status": "success", "data": []}, delay=1.0))
    assert password_step(client).status_code == 302
    assert attempts() == [
        ("arkesel", "unknown", "provider_timeout", None),
        ("twilio", "accepted", "", None),
    ]


def test_account_problem_fails_over_but_a_bad_number_does_not(
    client, user, routed, fake_arkesel, fake_twilio
):
    fake_arkesel.script(Reply(402, {"status": "error", "message": "Insufficient balance"}))
    assert password_step(client).status_code == 302
    assert attempts()[0] == ("arkesel", "failed", "provider_account", 402)
    assert len(fake_twilio.outgoing) == 1

    DeliveryAttempt.objects.all().delete()
    client.post("/account/login/cancel/")
    fake_arkesel.invalid_numbers.add("233241234567")
    assert password_step(client).status_code == 200
    assert attempts() == [("arkesel", "failed", "invalid_number", 200)]
    assert len(fake_twilio.outgoing) == 1


def test_failover_on_replaces_the_default_list(client, user, routed, fake_arkesel, fake_twilio):
    routed(failover_on=["provider_rate_limited"])
    fake_arkesel.script(NO_BALANCE)
    assert password_step(client).status_code == 200
    assert fake_twilio.requests == []
    fake_arkesel.script(Reply(429, {"status": "error", "message": "Too many requests"}))
    assert password_step(client).status_code == 302
    assert len(fake_twilio.outgoing) == 1


def test_every_provider_failing_records_every_attempt(
    client, user, routed, fake_arkesel, fake_twilio
):
    fake_arkesel.script(NO_BALANCE)
    fake_twilio.script(Reply(503, body=""))
    assert password_step(client).status_code == 200
    assert attempts() == [
        ("arkesel", "failed", "provider_account", 402),
        ("twilio", "failed", "provider_unavailable", 503),
    ]
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.failure_reason) == (
        ChallengeStatus.SEND_FAILED,
        "provider_unavailable",
    )
    assert challenge.code_hash == ""


def test_voice_goes_only_where_the_route_says(routed, fake_arkesel, fake_twilio):
    router = get_provider("default")
    result = router.send(
        OTPMessage(destination=GHANA, text="Your code is 1, 2, 3.", channel="voice", purpose="x")
    )
    assert result.alias == "twilio"
    assert fake_arkesel.requests == []
    assert fake_twilio.outgoing[0].kind == "call"


def test_members_that_do_not_serve_the_channel_are_skipped(
    use_providers, fake_arkesel, fake_twilio
):
    use_providers(
        default=(ROUTER, {"providers": ["arkesel", "twilio"]}),
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    result = get_provider("default").send(
        OTPMessage(destination=GHANA, text="1, 2, 3", channel="voice", purpose="x")
    )
    assert [a.alias for a in result.attempts] == ["twilio"]  # Arkesel SMS has no voice
    assert fake_arkesel.requests == []


def test_routes_by_calling_code_longest_prefix_first(use_providers, fake_arkesel, fake_twilio):
    use_providers(
        default=(
            ROUTER,
            {
                "routes": {
                    "sms": {
                        "+233": ["arkesel", "twilio"],
                        "+1": ["twilio"],
                        "+1876": ["arkesel"],
                        "*": ["twilio", "arkesel"],
                    },
                    "*": ["twilio"],
                }
            },
        ),
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        twilio=(TWILIO, twilio_options(fake_twilio, from_number="+15005550006")),
    )
    router = get_provider("default")
    assert router.route("sms", "+233241234567") == ["arkesel", "twilio"]
    assert router.route("sms", "+14155550100") == ["twilio"]
    assert router.route("sms", "+18765550100") == ["arkesel"]
    assert router.route("sms", "+447700900123") == ["twilio", "arkesel"]
    assert router.route("voice", "+233241234567") == ["twilio"]

    sent = router.send(OTPMessage(destination="+14155550100", text="x", channel="sms", purpose="x"))
    assert (sent.alias, sent.provider) == ("twilio", "twilio")
    assert fake_arkesel.requests == []


def test_no_route_for_a_channel_is_a_delivery_error(use_providers, fake_arkesel):
    use_providers(
        default=(ROUTER, {"routes": {"sms": ["arkesel"]}}),
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
    )
    with pytest.raises(DeliveryError) as info:
        get_provider("default").send(
            OTPMessage(destination=GHANA, text="x", channel="voice", purpose="x")
        )
    assert info.value.code == "provider_account"
    assert info.value.attempts == ()


@pytest.mark.django_db
def test_each_resend_adds_its_attempts(client, user, routed, fake_arkesel, fake_twilio, settings):
    settings.OTP_AUTH = {**settings.OTP_AUTH, "RESEND_COOLDOWN": 0}
    password_step(client)
    challenge = Challenge.objects.get()
    fake_arkesel.script(NO_BALANCE)
    resend_challenge(challenge.public_id, user=user)
    assert attempts() == [
        ("arkesel", "accepted", "", None),
        ("arkesel", "failed", "provider_account", 402),
        ("twilio", "accepted", "", None),
    ]
    challenge.refresh_from_db()
    assert challenge.provider_reference == fake_twilio.outgoing[0].sid


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs 'routes'"),
        ({"routes": {}}, "needs 'routes'"),
        ({"providers": []}, "non-empty list"),
        ({"providers": "arkesel"}, "non-empty list"),
        ({"providers": ["nope"]}, "'nope'"),
        ({"providers": ["default"]}, "'default'"),
        ({"routes": {"sms": {"233": ["arkesel"]}}}, "calling-code prefix"),
        ({"providers": ["verify"]}, "not deliver-only"),
        ({"providers": ["inner"]}, "another routing provider"),
        ({"providers": ["arkesel"], "failover_on": "provider_unavailable"}, "failover_on"),
    ],
)
def test_router_configuration_is_validated(use_providers, fake_arkesel, options, message):
    use_providers(
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        verify=(ARKESEL_VERIFY, arkesel_options(fake_arkesel)),
        inner=(ROUTER, {"providers": ["arkesel"]}),
        default=("otp_auth.providers.locmem.LocmemProvider", {}),
    )
    with pytest.raises(ConfigurationError, match=message):
        SMSProvider(alias="default", **options)


def test_verify_router_refuses_deliver_only_members(use_providers, fake_arkesel):
    from otp_auth.providers.routing import VerifyProvider

    use_providers(
        arkesel=(ARKESEL, arkesel_options(fake_arkesel)),
        default=("otp_auth.providers.locmem.LocmemProvider", {}),
    )
    with pytest.raises(ConfigurationError, match="not hosted-verify"):
        VerifyProvider(alias="router", providers=["arkesel"])


def test_failover_is_logged_with_its_reason(client, user, routed, fake_arkesel, caplog):
    fake_arkesel.script(NO_BALANCE)
    password_step(client)
    assert Challenge.objects.get().delivery_attempts.count() == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "otp_auth"]
    assert messages[0] == (
        "otp_auth: 'default' failed over from 'arkesel': Arkesel: insufficient balance "
        "provider=arkesel status=402"
    )
