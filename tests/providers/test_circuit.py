"""The circuit breaker: a vendor that hangs costs a few timeouts, then routing skips it
for every process until a single probe finds it answering again."""

from __future__ import annotations

import time
from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client, override_settings

from otp_auth.conf import app_settings
from otp_auth.exceptions import (
    ConfigurationError,
    InvalidNumberError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from otp_auth.models import AuditEvent, Challenge, DeliveryAttempt
from otp_auth.providers import get_provider, health
from otp_auth.signals import circuit_closed, circuit_opened
from tests.concurrency import race
from tests.conftest import password_step

from .conftest import arkesel_options, code_in, twilio_options

ARKESEL = "otp_auth.providers.arkesel.SMSProvider"
TWILIO = "otp_auth.providers.twilio.SMSProvider"
ROUTER = "otp_auth.providers.routing.SMSProvider"
READ_TIMEOUT = 0.6

pytestmark = pytest.mark.django_db


@pytest.fixture
def breaker(settings, fake_arkesel, fake_twilio):
    """``default`` routes SMS to Arkesel, then Twilio; Arkesel opens after two failures."""

    def configure(circuit: dict[str, Any] | None = None, **router: Any) -> None:
        settings.OTP_AUTH = {
            **settings.OTP_AUTH,
            "PROVIDERS": {
                "default": {
                    "BACKEND": ROUTER,
                    "OPTIONS": {"providers": ["arkesel", "twilio"], **router},
                },
                "arkesel": {
                    "BACKEND": ARKESEL,
                    "OPTIONS": arkesel_options(fake_arkesel, read_timeout=READ_TIMEOUT),
                    "CIRCUIT": circuit or {"FAILURES": 2, "WINDOW": 60, "COOL_OFF": 30},
                },
                "twilio": {
                    "BACKEND": TWILIO,
                    "OPTIONS": twilio_options(fake_twilio, from_number="+15005550006"),
                },
                "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
            },
        }
        get_provider.cache_clear()

    configure()
    return configure


@pytest.fixture
def clock(monkeypatch):
    """Move the breaker's clock without touching the cache's own expiry clock."""
    state = {"offset": 0.0}
    monkeypatch.setattr(health, "_now", lambda: time.time() + state["offset"])

    def advance(seconds: float) -> None:
        state["offset"] += seconds

    return advance


def timed_login(client: Client | None = None) -> tuple[Any, float]:
    started = time.monotonic()
    response = password_step(client or Client())
    return response, time.monotonic() - started


def attempts_of(challenge: Challenge) -> list[tuple[str, str, str]]:
    return [
        (a.provider_alias, a.outcome, a.error_code)
        for a in challenge.delivery_attempts.order_by("pk")
    ]


def test_hanging_vendor_is_skipped_once_its_circuit_opens(user, breaker, fake_arkesel, fake_twilio):
    fake_arkesel.hang = True
    for _ in range(2):
        response, elapsed = timed_login()
        assert response.status_code == 200  # "could not send": a timeout is not retried
        assert elapsed >= READ_TIMEOUT
    assert len(fake_arkesel.requests) == 2
    assert fake_twilio.requests == []
    assert health.state("arkesel").state == health.OPEN

    client = Client()
    response, _elapsed = timed_login(client)
    assert response.status_code == 302
    # The open circuit costs no timeout: the hanging vendor is not called at all (a
    # structural proof; no wall-clock bound, which a loaded machine could break).
    assert len(fake_arkesel.requests) == 2
    assert len(fake_twilio.outgoing) == 1
    challenge = Challenge.objects.latest("pk")
    assert attempts_of(challenge) == [
        ("arkesel", DeliveryAttempt.SKIPPED, health.CIRCUIT_OPEN),
        ("twilio", DeliveryAttempt.ACCEPTED, ""),
    ]
    code = code_in(fake_twilio.outgoing[0].params["Body"])
    assert client.post("/account/login/verify/", {"code": code}).status_code == 302
    opened = AuditEvent.objects.get(kind=AuditEvent.Kind.CIRCUIT_OPENED)
    assert opened.reason == "provider_timeout"
    assert opened.detail.startswith("arkesel: 2 failures")


def test_half_open_probe_closes_the_circuit_when_the_vendor_answers(
    user, breaker, fake_arkesel, fake_twilio, clock
):
    fake_arkesel.hang = True
    timed_login()
    timed_login()
    fake_arkesel.hang = False
    clock(29)
    assert health.state("arkesel").state == health.OPEN
    assert password_step(Client()).status_code == 302
    assert len(fake_arkesel.requests) == 2  # still open: skipped

    clock(2)
    assert health.state("arkesel").state == health.HALF_OPEN
    assert password_step(Client()).status_code == 302
    assert len(fake_arkesel.requests) == 3  # the probe
    assert len(fake_arkesel.sent) == 1
    assert health.state("arkesel").state == health.CLOSED
    closed = AuditEvent.objects.get(kind=AuditEvent.Kind.CIRCUIT_CLOSED)
    assert (closed.reason, closed.detail) == ("recovered", "arkesel")


def test_failed_probe_opens_the_circuit_for_another_cool_off(
    user, breaker, fake_arkesel, fake_twilio, clock
):
    fake_arkesel.hang = True
    timed_login()
    timed_login()
    clock(31)
    response, elapsed = timed_login()  # the probe pays the timeout once
    assert elapsed >= READ_TIMEOUT
    assert len(fake_arkesel.requests) == 3
    current = health.state("arkesel")
    assert current.state == health.OPEN
    assert current.opened_at is not None and current.opened_at > time.time() + 30
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.CIRCUIT_OPENED).count() == 2
    response, elapsed = timed_login()
    assert response.status_code == 302 and elapsed < READ_TIMEOUT / 3
    assert len(fake_arkesel.requests) == 3


def test_half_open_lets_exactly_one_probe_through(breaker, clock):
    for _ in range(2):
        health.record(health.Ticket("arkesel", health.CLOSED), ProviderTimeoutError())
    assert health.admit("arkesel") is None
    clock(31)
    results = race(12, lambda _: health.admit("arkesel"))
    kinds = Counter(r.kind if isinstance(r, health.Ticket) else r for r in results)
    assert kinds == Counter({"probe": 1, None: 11})


def test_every_alias_open_tries_the_one_opened_longest_ago(
    user, settings, breaker, fake_arkesel, fake_twilio, clock
):
    for alias in ("twilio", "arkesel"):
        for _ in range(5):
            health.record(health.Ticket(alias, health.CLOSED), ProviderUnavailableError())
        clock(1)
    assert health.state("arkesel").state == health.OPEN
    assert health.state("twilio").state == health.OPEN
    assert password_step(Client()).status_code == 302
    assert fake_arkesel.requests == []
    assert len(fake_twilio.outgoing) == 1  # twilio opened first
    assert attempts_of(Challenge.objects.get()) == [
        ("arkesel", DeliveryAttempt.SKIPPED, health.CIRCUIT_OPEN),
        ("twilio", DeliveryAttempt.SKIPPED, health.CIRCUIT_OPEN),
        ("twilio", DeliveryAttempt.ACCEPTED, ""),
    ]
    assert health.state("twilio").state == health.CLOSED


def test_any_answer_from_the_vendor_clears_the_count(breaker):
    """A success, or a refusal about one number (the vendor answered), starts over."""
    ticket = health.Ticket("arkesel", health.CLOSED)
    health.record(ticket, ProviderTimeoutError())
    assert health.state("arkesel").failures == 1
    health.record(ticket)
    health.record(ticket, ProviderTimeoutError())
    health.record(ticket, InvalidNumberError())
    assert health.state("arkesel").state == health.CLOSED
    assert health.state("arkesel").failures == 0
    health.record(ticket, ProviderTimeoutError())
    health.record(ticket, ProviderUnavailableError())
    assert health.state("arkesel").state == health.OPEN


def test_failures_outside_the_window_do_not_add_up(breaker, fake_arkesel):
    breaker(circuit={"FAILURES": 2, "WINDOW": 1, "COOL_OFF": 30})
    ticket = health.Ticket("arkesel", health.CLOSED)
    health.record(ticket, ProviderTimeoutError())
    time.sleep(1.1)
    health.record(ticket, ProviderTimeoutError())
    assert health.state("arkesel").state == health.CLOSED


def test_zero_failures_turns_the_breaker_off(breaker):
    breaker(circuit={"FAILURES": 0})
    for _ in range(10):
        health.record(health.Ticket("arkesel", health.CLOSED), ProviderTimeoutError())
    assert health.admit("arkesel") is not None
    assert health.state("arkesel").state == health.CLOSED


def test_signals_fire_once_per_change(breaker):
    seen: list[tuple[str, str]] = []

    def opened(sender: Any, *, alias: str, error: str, **kw: Any) -> None:
        seen.append(("opened", alias))

    def closed(sender: Any, *, alias: str, reason: str, **kw: Any) -> None:
        seen.append(("closed", reason))

    circuit_opened.connect(opened)
    circuit_closed.connect(closed)
    try:
        for _ in range(4):
            health.record(health.Ticket("arkesel", health.CLOSED), ProviderTimeoutError())
        assert health.reset("arkesel") is True
        assert health.reset("arkesel") is False
    finally:
        circuit_opened.disconnect(opened)
        circuit_closed.disconnect(closed)
    assert seen == [("opened", "arkesel"), ("closed", "reset")]


def test_command_lists_state_and_resets(breaker):
    for _ in range(2):
        health.record(health.Ticket("arkesel", health.CLOSED), ProviderTimeoutError())
    health.record(health.Ticket("twilio", health.CLOSED), ProviderTimeoutError())
    out = StringIO()
    call_command("otp_auth_providers", stdout=out)
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()}
    assert lines["ALIAS"][:3] == ["ALIAS", "STATE", "FAILURES"]
    assert lines["arkesel"][1:3] == ["open", "0"]
    assert lines["twilio"][1:3] == ["closed", "1"]
    assert "2 in 60 s, cool-off 30 s" in out.getvalue()

    out = StringIO()
    call_command("otp_auth_providers", "--reset", "arkesel", stdout=out)
    assert out.getvalue().strip() == "arkesel: circuit closed"
    assert health.state("arkesel").state == health.CLOSED
    assert AuditEvent.objects.filter(
        kind=AuditEvent.Kind.CIRCUIT_CLOSED, reason="reset", detail="arkesel"
    ).exists()


def test_command_refuses_an_unknown_alias(breaker):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nope"):
        call_command("otp_auth_providers", "--reset", "nope")


@pytest.mark.parametrize(
    ("circuit", "message"),
    [
        ("5", "must be a dict"),
        ({"FAILURE": 5}, "Unknown key"),
        ({"FAILURES": -1}, "'FAILURES'\\] must be an integer between 0 and 1000"),
        ({"WINDOW": 0}, "'WINDOW'\\] must be an integer"),
        ({"COOL_OFF": True}, "'COOL_OFF'\\] must be an integer"),
    ],
)
def test_circuit_settings_are_validated(settings, circuit, message):
    settings.OTP_AUTH = {
        **settings.OTP_AUTH,
        "PROVIDERS": {"default": {"BACKEND": "x.Y", "CIRCUIT": circuit}},
    }
    with pytest.raises(ConfigurationError, match=message):
        app_settings.PROVIDERS  # noqa: B018


def test_circuit_defaults(settings):
    circuit = app_settings.circuit("default")
    assert (circuit.failures, circuit.window, circuit.cool_off) == (5, 60, 30)


@pytest.mark.redis
def test_state_is_shared_between_two_cache_clients(settings):
    """Two separate Redis clients (as two processes have) see one state."""
    default = settings.CACHES["default"]
    if not default["BACKEND"].endswith(".RedisCache"):
        pytest.skip(f"needs Redis; CACHE_URL gives {default['BACKEND']}")
    shared = {**default, "KEY_PREFIX": "circuit-share"}
    with override_settings(CACHES={"default": default, "one": shared, "two": dict(shared)}):
        assert caches["one"] is not caches["two"]
        caches["one"].clear()
        with override_settings(OTP_AUTH={**settings.OTP_AUTH, "CACHE": "one"}):
            for _ in range(5):
                health.record(health.Ticket("default", health.CLOSED), ProviderTimeoutError())
            assert health.state("default").state == health.OPEN
        with override_settings(OTP_AUTH={**settings.OTP_AUTH, "CACHE": "two"}):
            assert health.state("default").state == health.OPEN
            assert health.admit("default") is None
            health.reset("default")
        with override_settings(OTP_AUTH={**settings.OTP_AUTH, "CACHE": "one"}):
            assert health.state("default").state == health.CLOSED
        caches["one"].clear()
