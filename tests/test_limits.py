"""Rate limits on sends and code checks (R47, R48, R89-R91): counted in the cache, checked
before any provider call or code check, audited and signalled when they refuse."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory, override_settings

from otp_auth.conf import RATE_LIMIT_DEFAULTS, Rate, app_settings
from otp_auth.constants import Purpose
from otp_auth.exceptions import (
    ConfigurationError,
    CountryNotAllowedError,
    InvalidCodeError,
    InvalidDestinationError,
    RateLimitedError,
)
from otp_auth.ip import client_ip
from otp_auth.models import AuditEvent, Challenge, Device
from otp_auth.providers import locmem
from otp_auth.services import (
    challenges,
    issue_challenge,
    limits,
    resend_challenge,
    verify_challenge,
)
from otp_auth.services.devices import parse_phone_number
from otp_auth.signals import rate_limited
from tests.conftest import last_code, otp_settings, password_step

pytestmark = pytest.mark.django_db

PHONE = "+233241234567"


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """Time frozen at the start of an hour: windows are fixed, so a test that moves the
    clock a few minutes must not cross into the next window by chance."""
    time_machine.move_to(datetime(2030, 1, 1, 8, 0, tzinfo=UTC), tick=False)
    return time_machine


@pytest.fixture
def refusals() -> Iterator[list[dict[str, Any]]]:
    """Every ``rate_limited`` signal of the test, as its kwargs."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    rate_limited.connect(receiver)
    yield calls
    rate_limited.disconnect(receiver)


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Destinations handed to the locmem provider, refused sends included."""
    calls: list[str] = []
    real = locmem.LocmemProvider.deliver

    def deliver(self: Any, message: Any) -> Any:
        calls.append(message.destination)
        return real(self, message)

    monkeypatch.setattr(locmem.LocmemProvider, "deliver", deliver)
    return calls


def limits_(**changes: Any) -> Any:
    return otp_settings(RATE_LIMITS=changes)


def send(user: Any, request: Any = None, purpose: str = Purpose.LOGIN) -> Challenge:
    return issue_challenge(
        user=user, device=user.otp_devices.get(), purpose=purpose, request=request
    )


def from_ip(ip: str, **meta: Any) -> Any:
    return RequestFactory().post("/", REMOTE_ADDR=ip, **meta)


def blocked_events(reason: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind="rate_limited", reason=reason))


# Settings --------------------------------------------------------------------------------


def test_defaults_are_generous_but_real() -> None:
    limits_now = app_settings.RATE_LIMITS
    assert limits_now["send_per_user"] == (Rate(10, 3600), Rate(30, 86_400))
    assert limits_now["send_per_destination"] == (Rate(5, 3600), Rate(10, 86_400))
    assert limits_now["send_per_ip"] == (Rate(30, 3600), Rate(200, 86_400))
    assert limits_now["verify_failures_per_ip"] == (Rate(50, 3600),)
    assert limits_now["send_per_calling_code"] == (Rate(100, 3600), Rate(500, 86_400))
    assert limits_now["send_budget"] == (Rate(300, 3600), Rate(2000, 86_400))
    assert limits_now["enroll_send_per_ip"] == (Rate(5, 3600), Rate(20, 86_400))
    assert limits_now["enroll_send_per_user"] == (Rate(5, 86_400),)
    assert limits_now["enroll_send_budget"] == (Rate(100, 3600),)
    assert limits_now["password_failures_per_ip"] == (Rate(100, 3600), Rate(500, 86_400))
    assert set(limits_now) == set(RATE_LIMIT_DEFAULTS)


def test_site_limits_merge_over_the_defaults() -> None:
    with limits_(send_per_user="3/15m", send_budget=["1000/d"], send_per_ip=None):
        parsed = app_settings.RATE_LIMITS
    assert parsed["send_per_user"] == (Rate(3, 900),)
    assert parsed["send_budget"] == (Rate(1000, 86_400),)
    assert parsed["send_per_ip"] == ()
    assert parsed["send_per_destination"] == (Rate(5, 3600), Rate(10, 86_400))
    assert [str(r) for r in parsed["send_per_user"] + parsed["send_budget"]] == ["3/15m", "1000/d"]


@pytest.mark.parametrize(
    "value", ["10", "10/w", "0/h", "-1/h", "ten/h", "10/0h", "10/32d", 10, {"a": 1}]
)
def test_malformed_limits_are_refused_with_the_key(value: Any) -> None:
    with limits_(send_per_user=value), pytest.raises(ConfigurationError, match="send_per_user"):
        app_settings.RATE_LIMITS  # noqa: B018


def test_unknown_limit_names_are_refused() -> None:
    with limits_(sends_per_user="5/h"), pytest.raises(ConfigurationError, match="sends_per_user"):
        app_settings.RATE_LIMITS  # noqa: B018


def test_rate_limited_error_says_when_to_come_back() -> None:
    assert RateLimitedError(30).message == "Too many attempts. Please try again in 30 seconds."
    assert RateLimitedError(61).message == "Too many attempts. Please try again in 2 minutes."
    assert RateLimitedError(3 * 3600).message == "Too many attempts. Please try again in 3 hours."
    error = RateLimitedError(None, limit="x")
    assert (error.code, error.retry_after, error.limit) == ("rate_limited", None, "x")
    assert "try again later" in error.message


# Counters --------------------------------------------------------------------------------


def test_counts_up_to_the_limit_then_refuses_until_the_window_ends(clock: Any) -> None:
    with limits_(send_per_user="3/h"):
        for _ in range(3):
            limits.take("send_per_user", "user:1")
        with pytest.raises(RateLimitedError) as info:
            limits.take("send_per_user", "user:1")
        assert info.value.limit == "send_per_user"
        assert 0 < info.value.retry_after <= 3600
        # Refusals take nothing: the count stays at the limit.
        assert limits.current("send_per_user", "user:1") == {"3/h": 3}
        limits.take("send_per_user", "user:2")  # another subject has its own budget
        clock.shift(info.value.retry_after)
        limits.take("send_per_user", "user:1")
        assert limits.current("send_per_user", "user:1") == {"3/h": 1}


def test_a_refusal_by_one_limit_gives_back_what_the_others_counted() -> None:
    with limits_(send_per_user="5/h", send_per_ip="1/h"):
        limits.take_all([("send_per_user", "u"), ("send_per_ip", "ip")])
        with pytest.raises(RateLimitedError) as info:
            limits.take_all([("send_per_user", "u"), ("send_per_ip", "ip")])
        assert info.value.limit == "send_per_ip"
        assert limits.current("send_per_user", "u") == {"5/h": 1}


def test_release_gives_the_count_back() -> None:
    with limits_(verify_failures_per_ip="2/h"):
        reservation = limits.take("verify_failures_per_ip", "ip:1")
        reservation.release()
        reservation.release()  # once only
        assert limits.current("verify_failures_per_ip", "ip:1") == {"2/h": 0}


def test_the_cache_never_holds_a_destination_in_clear(user: Any) -> None:
    send(user, from_ip("203.0.113.9"))
    store = caches["default"]._cache  # type: ignore[attr-defined]
    if hasattr(store, "get_client"):  # Redis
        keys = " ".join(k.decode() for k in store.get_client().keys("*"))
    else:  # local memory
        keys = " ".join(str(k) for k in store)
    assert "otp_auth:rl:send_per_destination" in keys
    for secret in (PHONE, PHONE[1:], "203.0.113.9", f"user:{user.pk}"):
        assert secret not in keys


# Sends (R89) -----------------------------------------------------------------------------


def test_sends_per_destination_are_capped_across_users(
    make_user: Any, outbox: list[Any], provider_calls: list[str], refusals: list[Any]
) -> None:
    users = [make_user(f"u{i}") for i in range(6)]  # all on the same phone number
    for user in users[:5]:
        send(user)
    with pytest.raises(RateLimitedError) as info:
        send(users[5])
    assert info.value.limit == "send_per_destination"
    assert len(outbox) == len(provider_calls) == 5
    assert Challenge.objects.count() == 5  # no row for the refused send
    (event,) = blocked_events("send_per_destination")
    assert (event.user, event.outcome, event.channel) == (users[5], "blocked", "sms")
    assert event.destination == "\u2022\u2022\u2022\u20224567"
    assert [r["limit"] for r in refusals] == ["send_per_destination"]
    assert refusals[0]["user"] == users[5]


def test_daily_cap_per_destination_outlasts_the_hourly_one(
    clock: Any, user: Any, outbox: list[Any]
) -> None:
    for _hour in range(2):
        for _ in range(5):
            send(user)
        clock.shift(3600)
    assert len(outbox) == 10
    with pytest.raises(RateLimitedError) as info:
        send(user)  # 10:00: a new hour, but the same day
    assert info.value.limit == "send_per_destination"
    assert info.value.retry_after == 14 * 3600  # until midnight UTC


def test_sends_per_user_count_every_device(make_user: Any, outbox: list[Any], mailoutbox) -> None:
    user = make_user(email="alice@mail.example")
    phone, mail = user.otp_devices.order_by("email")
    with limits_(send_per_user="3/h"):
        issue_challenge(user=user, device=phone, purpose=Purpose.LOGIN)
        issue_challenge(user=user, device=mail, purpose=Purpose.LOGIN)
        issue_challenge(user=user, device=phone, channel="voice", purpose=Purpose.LOGIN)
        with pytest.raises(RateLimitedError) as info:
            issue_challenge(user=user, device=mail, purpose=Purpose.LOGIN)
    assert info.value.limit == "send_per_user"
    assert (len(outbox), len(mailoutbox)) == (2, 1)


def test_sends_per_ip_are_capped(make_user: Any, outbox: list[Any]) -> None:
    with limits_(send_per_ip="2/h"):
        send(make_user("a", phone="+233241111111"), from_ip("198.51.100.7"))
        send(make_user("b", phone="+233241111112"), from_ip("198.51.100.7"))
        carol = make_user("c", phone="+233241111113")
        with pytest.raises(RateLimitedError) as info:
            send(carol, from_ip("198.51.100.7"))
        send(carol, from_ip("198.51.100.8"))
    assert info.value.limit == "send_per_ip"
    assert len(outbox) == 3
    (event,) = blocked_events("send_per_ip")
    assert event.ip_address == "198.51.100.7"


def test_sends_per_calling_code_cap_phones_only(
    make_user: Any, outbox: list[Any], mailoutbox: Any
) -> None:
    with limits_(send_per_calling_code="2/h"):
        send(make_user("a", phone="+233241111111"))
        send(make_user("b", phone="+233241111112"))
        with pytest.raises(RateLimitedError) as info:
            send(make_user("c", phone="+233241111113"))
        send(make_user("d", phone="+14155550123"))  # another calling code
        send(make_user("e", phone=None, email="e@mail.example"))  # email is not counted
    assert info.value.limit == "send_per_calling_code"
    assert (len(outbox), len(mailoutbox)) == (3, 1)


def test_send_budget_is_a_circuit_breaker_with_an_alert(
    make_user: Any, outbox: list[Any], mailoutbox: Any, refusals: list[Any], caplog: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="otp_auth")
    with limits_(send_budget="3/d"):
        for i in range(3):
            send(make_user(f"u{i}", phone=f"+23324111111{i}"))
        for i in range(3, 6):
            with pytest.raises(RateLimitedError) as info:
                send(make_user(f"u{i}", phone=f"+23324111111{i}"))
            assert info.value.limit == "send_budget"
        send(make_user("mail", phone=None, email="m@mail.example"))  # email still goes out
    assert (len(outbox), len(mailoutbox)) == (3, 1)
    assert [r["limit"] for r in refusals] == ["send_budget"] * 3
    alerts = [r for r in caplog.records if "send budget" in r.getMessage()]
    assert len(alerts) == 1  # once per window, not once per refused send
    assert alerts[0].levelno == logging.ERROR


def test_a_refused_resend_changes_nothing_and_is_audited(
    clock: Any, user: Any, outbox: list[Any]
) -> None:
    with limits_(send_per_user="1/h"):
        challenge = send(user)
        code = last_code()
        before = Challenge.objects.get(pk=challenge.pk)
        clock.shift(61)
        with pytest.raises(RateLimitedError):
            resend_challenge(challenge.public_id, user=user)
    after = Challenge.objects.get(pk=challenge.pk)
    assert (after.code_hash, after.send_count, after.last_sent_at) == (
        before.code_hash,
        1,
        before.last_sent_at,
    )
    assert len(outbox) == 1
    (event,) = blocked_events("send_per_user")
    assert event.challenge_pk == challenge.pk
    verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)  # still usable


def test_resends_and_device_switches_count_as_sends(
    clock: Any, client: Client, make_user: Any, outbox: list[Any], mailoutbox: Any
) -> None:
    user = make_user(email="alice@mail.example")
    mail = user.otp_devices.get(email="alice@mail.example")
    with limits_(send_per_user="3/h"):
        password_step(client)
        clock.shift(61)
        client.post("/account/login/resend/")
        clock.shift(61)
        client.post("/account/login/switch/", {"device": mail.pk})
        assert (len(outbox), len(mailoutbox)) == (2, 1)
        clock.shift(61)
        response = client.post("/account/login/resend/", follow=True)
    assert (len(outbox), len(mailoutbox)) == (2, 1)
    assert "Too many attempts. Please try again in" in response.content.decode()


def test_the_login_page_says_when_sends_are_refused(client: Client, user: Any) -> None:
    with limits_(send_per_user="1/h"):
        assert password_step(client).status_code == 302
        locmem.clear()
        response = password_step(Client())
    assert response.status_code == 200
    # Which limit, not a bare "too many attempts": the right password was typed.
    assert "No more codes can be sent to your account for" in response.content.decode()
    assert locmem.outbox == []
    assert (
        response.cookies.get("otp_auth_login") is None
        or not response.cookies["otp_auth_login"].value
    )


# Allow-list and who may trigger a send (R90, R91) -------------------------------------


def test_numbers_outside_the_allowed_countries_are_refused_at_enrollment() -> None:
    with otp_settings(ALLOWED_COUNTRIES=["GH"]):
        assert parse_phone_number("024 123 4567") == PHONE
        with pytest.raises(InvalidDestinationError):
            parse_phone_number("+14155550123")


def test_a_device_outside_the_allow_list_gets_nothing_and_the_refusal_is_audited(
    make_user: Any, provider_calls: list[str]
) -> None:
    user = make_user(phone="+14155550123")  # enrolled before the list was narrowed
    with otp_settings(ALLOWED_COUNTRIES=["GH"]), pytest.raises(CountryNotAllowedError):
        send(user)
    assert provider_calls == []
    event = AuditEvent.objects.get(kind="send_failed")
    assert (event.reason, event.outcome) == ("country_not_allowed", "blocked")


def test_anonymous_callers_cannot_trigger_sends(client: Client, user: Any, outbox: Any) -> None:
    device = user.otp_devices.get()
    client.post("/account/login/resend/")
    client.post("/account/login/switch/", {"device": device.pk})
    client.post("/account/devices/add/", {"channel": "sms", "destination": "+233241111111"})
    client.post("/account/step-up/", {"send": "1", "device": device.pk})
    client.post("/account/login/", {"username": "alice", "password": "wrong"})
    assert outbox == []
    assert not Challenge.objects.exists()


# Code checks from one address (R47) ----------------------------------------------------


def test_one_address_guessing_across_accounts_is_stopped(
    make_user: Any, monkeypatch: pytest.MonkeyPatch, refusals: list[Any]
) -> None:
    judged = mock.Mock(wraps=challenges._code_matches)
    monkeypatch.setattr(challenges, "_code_matches", judged)
    victims = [make_user(f"v{i}", phone=f"+23324111111{i}") for i in range(6)]
    issued = [send(v) for v in victims]
    request = from_ip("192.0.2.44")
    with limits_(verify_failures_per_ip="5/h"):
        for challenge in issued[:5]:
            with pytest.raises(InvalidCodeError):
                verify_challenge(challenge.public_id, "000000", purpose="login", request=request)
        with pytest.raises(RateLimitedError) as info:
            verify_challenge(issued[5].public_id, "000000", purpose="login", request=request)
        # Another address is not affected.
        with pytest.raises(InvalidCodeError):
            verify_challenge(
                issued[5].public_id, "000000", purpose="login", request=from_ip("192.0.2.45")
            )
    assert info.value.limit == "verify_failures_per_ip"
    assert judged.call_count == 6  # the refused check looked at no code
    assert Challenge.objects.get(pk=issued[5].pk).attempts == 1
    assert [r["limit"] for r in refusals] == ["verify_failures_per_ip"]
    (event,) = blocked_events("verify_failures_per_ip")
    assert event.ip_address == "192.0.2.44"


def test_accepted_codes_do_not_use_up_the_address_budget(make_user: Any) -> None:
    request = from_ip("192.0.2.50")
    with limits_(verify_failures_per_ip="1/h"):
        for i in range(3):
            user = make_user(f"ok{i}", phone=f"+23324111112{i}")
            challenge = send(user)
            verify_challenge(challenge.public_id, last_code(), purpose="login", request=request)
        assert limits.current("verify_failures_per_ip", "ip:192.0.2.50") == {"1/h": 0}


# Client address (R48) ------------------------------------------------------------------


def test_forged_forwarded_for_is_ignored_without_trusted_proxies(
    client: Client, make_user: Any, outbox: list[Any]
) -> None:
    with limits_(send_per_ip="1/h"):
        make_user("a", phone="+233241111111")
        make_user("b", phone="+233241111112")
        password_step(client, "a", HTTP_X_FORWARDED_FOR="203.0.113.1")
        response = password_step(Client(), "b", HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert "Too many codes were asked for from this network" in response.content.decode()
    assert len(outbox) == 1
    ips = set(AuditEvent.objects.exclude(kind="factor_added").values_list("ip_address", flat=True))
    assert ips == {"127.0.0.1"}
    assert Challenge.objects.get().ip_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.1", "203.0.113.5", "10.0.0.1"),
        (1, "10.0.0.1", "203.0.113.5", "203.0.113.5"),
        (1, "10.0.0.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # client prepended a lie
        (2, "10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (2, "10.0.0.2", "203.0.113.5", "10.0.0.2"),  # fewer hops than proxies
        (1, "10.0.0.1", "not-an-ip", "10.0.0.1"),
        (1, "10.0.0.1", "", "10.0.0.1"),
        (["10.0.0.0/8"], "10.0.0.1", "6.6.6.6, 203.0.113.5, 10.0.0.7", "203.0.113.5"),
        (["10.0.0.0/8"], "198.51.100.1", "203.0.113.5", "198.51.100.1"),  # not our proxy
        (["10.0.0.0/8"], "10.0.0.1", "10.0.0.9, 10.0.0.8", "10.0.0.1"),
        (["10.0.0.0/8"], "10.0.0.1", "junk, 10.0.0.8", "10.0.0.1"),
        (["2001:db8::/32"], "2001:db8::1", "2001:db8::2, 203.0.113.5", "203.0.113.5"),
        (0, "::ffff:192.0.2.1", "", "192.0.2.1"),
        (0, "garbage", "", None),
    ],
)
def test_client_ip(trusted: Any, remote: str, forwarded: str, expected: str | None) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with otp_settings(TRUSTED_PROXIES=trusted):
        assert client_ip(request) == expected


@pytest.mark.parametrize("bad", [-1, 11, True, "10.0.0.0/8", ["10.0.0.0/33"], [1]])
def test_trusted_proxies_are_validated(bad: Any) -> None:
    with otp_settings(TRUSTED_PROXIES=bad), pytest.raises(ConfigurationError):
        app_settings.TRUSTED_PROXIES  # noqa: B018


def test_a_trusted_proxy_setting_moves_the_limits_to_the_real_client(
    make_user: Any, outbox: list[Any]
) -> None:
    with otp_settings(TRUSTED_PROXIES=1, RATE_LIMITS={"send_per_ip": "1/h"}):
        a = make_user("a", phone="+233241111111")
        b = make_user("b", phone="+233241111112")
        send(a, from_ip("10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.1"))
        send(b, from_ip("10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.2"))
    assert len(outbox) == 2
    assert set(Challenge.objects.values_list("ip_address", flat=True)) == {
        "203.0.113.1",
        "203.0.113.2",
    }


# System checks -------------------------------------------------------------------------


def _limit_checks() -> set[str]:
    from otp_auth.checks import check_limits

    return {m.id for m in check_limits()}


def test_check_refuses_a_missing_or_dummy_cache() -> None:
    assert _limit_checks() == set()
    with otp_settings(CACHE="limits"):
        assert _limit_checks() == {"otp_auth.E020"}
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy):
        assert _limit_checks() == {"otp_auth.E020"}


def test_check_warns_about_caches_that_cannot_count_atomically() -> None:
    caches_ = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "files": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": "/tmp/otp-auth-never-used",
        },
    }
    with override_settings(CACHES=caches_), otp_settings(CACHE="files"):
        assert _limit_checks() == {"otp_auth.W020"}


def test_check_warns_when_the_lock_can_never_come_before_the_disable() -> None:
    with otp_settings(LOCKOUT_THRESHOLD=100):
        assert _limit_checks() == {"otp_auth.W021"}
    with otp_settings(LOCKOUT_THRESHOLD=0, DISABLE_THRESHOLD=20):
        assert _limit_checks() == set()


def test_check_reports_malformed_limits() -> None:
    with limits_(send_per_user="lots"):
        assert _limit_checks() == {"otp_auth.E007"}


def test_a_device_without_confirmation_is_never_sent_a_login_code(user: Any) -> None:
    device = Device.objects.create(user=user, phone_number="+233241111119", channels=["sms"])
    from otp_auth.exceptions import DeviceError

    with pytest.raises(DeviceError):
        issue_challenge(user=user, device=device, purpose=Purpose.LOGIN)
    assert locmem.outbox == []
