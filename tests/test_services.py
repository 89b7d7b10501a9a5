"""Challenge services: issue, verify, resend and cancel, with the locmem provider."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from unittest import mock

import pytest
import time_machine
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.crypto import generate_code, hash_code
from otp_auth.exceptions import (
    ChallengeLockedError,
    DeliveryError,
    DeviceError,
    InvalidCodeError,
    ProviderError,
    ResendLimitError,
    ResendTooSoonError,
)
from otp_auth.models import Challenge, Device
from otp_auth.providers import BaseProvider, DeliveryResult, HostedVerification, locmem
from otp_auth.services import (
    cancel_challenge,
    issue_challenge,
    resend_available_in,
    resend_challenge,
    verify_challenge,
)
from otp_auth.signals import (
    challenge_failed,
    challenge_issued,
    challenge_locked,
    challenge_verified,
    pre_send,
)
from tests.conftest import PASSWORD, last_code, otp_settings, password_step

pytestmark = pytest.mark.django_db

START = datetime(2030, 1, 1, 8, 0, 0, tzinfo=UTC)
PHONE = "+233241234567"
#: Never generated: values the tests submit as known-wrong codes, and the six-digit runs of
#: the test phone number (so "the code appears nowhere in the database" cannot misfire).
RESERVED = {"000000", "424242"} | {PHONE[i : i + 6] for i in range(1, len(PHONE) - 5)}


@pytest.fixture(autouse=True)
def distinct_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real generator, minus repeats and the reserved values.

    A resend draws a fresh code; were it equal to the previous one (one chance in a
    million), "the old code is refused" would not hold, so such draws are taken again.
    """
    seen = set(RESERVED)

    def generate() -> str:
        code = generate_code()
        while code in seen:
            code = generate_code()
        seen.add(code)
        return code

    monkeypatch.setattr("otp_auth.services.challenges.generate_code", generate)


@pytest.fixture
def clock() -> Iterator[Any]:
    """Time stands still at ``START`` until the test moves it with ``clock.shift()``."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def device(user: Any) -> Device:
    return user.otp_devices.get()


@pytest.fixture
def signals() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every challenge signal fired during the test, in order, with its kwargs."""
    calls: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name, signal in (
        ("issued", challenge_issued),
        ("verified", challenge_verified),
        ("failed", challenge_failed),
        ("locked", challenge_locked),
    ):

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            calls.append((_name, {"sender": sender, **kwargs}))

        signal.connect(receiver)
        receivers[signal] = receiver
    yield calls
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def issue(user: Any, device: Device, purpose: str = Purpose.LOGIN, **kwargs: Any) -> Challenge:
    return issue_challenge(user=user, device=device, purpose=purpose, **kwargs)


def wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def refresh(challenge: Challenge) -> Challenge:
    challenge.refresh_from_db()
    return challenge


# Issue -----------------------------------------------------------------------------------


def test_issue_sends_a_code_and_stores_only_its_hash(user: Any, device: Device, outbox) -> None:
    challenge = issue(user, device)
    code = last_code()
    assert len(outbox) == 1
    assert outbox[0].destination == PHONE
    assert outbox[0].channel == "sms"
    assert outbox[0].metadata == {"challenge": challenge.public_id}
    challenge = refresh(challenge)
    assert challenge.status == ChallengeStatus.PENDING
    assert challenge.code_hash == hash_code(code, challenge_id=challenge.public_id, purpose="login")
    assert challenge.destination_masked == "\u2022\u2022\u2022\u20224567"
    assert challenge.provider_alias == "default"
    assert challenge.provider_reference == "locmem-1"
    assert (challenge.send_count, challenge.attempts, challenge.max_attempts) == (1, 0, 5)


def test_issue_records_request_metadata(rf: Any, user: Any, device: Device) -> None:
    request = rf.post("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Browser\r\nX-Evil: 1")
    challenge = refresh(issue(user, device, request=request))
    assert challenge.ip_address == "203.0.113.9"
    assert challenge.user_agent == "BrowserX-Evil: 1"


def test_expiry_is_code_ttl_from_now(clock: Any, user: Any, device: Device) -> None:
    with otp_settings(CODE_TTL=120):
        challenge = issue(user, device)
    assert challenge.created_at == START
    assert challenge.expires_at == START + timedelta(seconds=120)


def test_code_is_absent_from_every_stored_column_and_the_session(
    clock: Any, client: Any, user: Any
) -> None:
    """R9/R12: after the password step sent a code, no table holds it (or the password)."""
    password_step(client)
    code = last_code()
    challenge = Challenge.objects.get()
    # The one column derived from the code holds exactly its keyed hash.
    assert challenge.code_hash == hash_code(code, challenge_id=challenge.public_id, purpose="login")
    dumped = dump_tables()
    assert "django_session" in dumped
    assert any(name.startswith("otp_auth_challenge") for name in dumped)
    for table, rows in dumped.items():
        for row in rows:
            for column, value in row.items():
                if column == "code_hash":
                    continue
                assert code not in value, f"code found in {table}.{column}"
                assert PASSWORD not in value, f"password found in {table}.{column}"
    for row in dumped["django_session"]:
        decoded = str(SessionStore().decode(row["session_data"]))
        assert code not in decoded
        assert PASSWORD not in decoded
        assert challenge.code_hash not in decoded


def dump_tables() -> dict[str, list[dict[str, str]]]:
    tables = [
        name
        for name in connection.introspection.table_names()
        if name.startswith("otp_auth") or name == "django_session"
    ]
    dumped: dict[str, list[dict[str, str]]] = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            columns = [col[0] for col in cursor.description]
            dumped[table] = [
                {column: str(value) for column, value in zip(columns, row, strict=True)}
                for row in cursor.fetchall()
            ]
    return dumped


def test_str_and_repr_never_show_code_or_hash(user: Any, device: Device) -> None:
    challenge = refresh(issue(user, device))
    code = last_code()
    for text in (str(challenge), repr(challenge)):
        assert code not in text
        assert challenge.code_hash not in text
        assert challenge.public_id not in text
    assert str(challenge) == "Login via sms to \u2022\u2022\u2022\u20224567"


def test_email_device_gets_an_email(make_user: Any, mailoutbox: list[Any]) -> None:
    user = make_user("erin", phone=None, email="erin@example.com")
    device = user.otp_devices.get()
    challenge = issue(user, device, channel="email")
    assert challenge.provider_alias == "email"
    assert challenge.destination_masked == "e\u2022\u2022\u2022\u2022@example.com"
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.to == ["erin@example.com"]
    assert sent.subject == "Your sign-in code"
    match = re.search(r"\b(\d{6})\b", sent.body)
    assert match
    code = match.group(1)
    html, mimetype = sent.alternatives[0]
    assert mimetype == "text/html"
    assert code in html
    verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


def test_unconfirmed_device_only_for_enrollment(user: Any, device: Device) -> None:
    device.confirmed = False
    device.save()
    for purpose in (Purpose.LOGIN, Purpose.STEP_UP, Purpose.PASSWORD_RESET):
        with pytest.raises(DeviceError):
            issue(user, device, purpose=purpose)
    assert not Challenge.objects.exists()
    challenge = issue(user, device, purpose=Purpose.ENROLLMENT)
    verify_challenge(challenge.public_id, last_code(), purpose=Purpose.ENROLLMENT, user=user)


def test_unusable_devices_are_refused(make_user: Any, user: Any, device: Device, outbox) -> None:
    bob = make_user("bob", phone="+233201234567")
    with pytest.raises(DeviceError):
        issue(bob, device)  # alice's device
    with pytest.raises(DeviceError):
        issue(user, device, channel="email")  # a phone does not receive email
    with otp_settings(CHANNELS=["email"]), pytest.raises(DeviceError):
        issue(user, device, channel="sms")  # channel switched off
    assert outbox == []
    assert not Challenge.objects.exists()


# Verify ----------------------------------------------------------------------------------


def test_right_code_verifies_once(clock: Any, user: Any, device: Device) -> None:
    challenge = issue(user, device)
    code = last_code()
    clock.shift(30)
    verified = verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, user=user)
    assert verified.user == user
    challenge = refresh(challenge)
    assert challenge.status == ChallengeStatus.VERIFIED
    assert challenge.consumed_at == START + timedelta(seconds=30)
    assert challenge.code_hash == ""
    device.refresh_from_db()
    assert device.last_used_at == START + timedelta(seconds=30)
    # R24: single use, in any session.
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, user=user)
    assert info.value.reason == "used"
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


def test_spaced_code_is_accepted(user: Any, device: Device) -> None:
    challenge = issue(user, device)
    code = last_code()
    verify_challenge(challenge.public_id, f" {code[:3]} {code[3:]} ", purpose=Purpose.LOGIN)


@pytest.mark.parametrize(
    "submitted",
    [
        "",
        None,
        "000000",
        "12345",
        "1234567",
        "12345a",
        "x" * 10_240,
        123456,
        ["123456", "654321"],
    ],
)
def test_empty_null_and_malformed_codes_are_ordinary_failures(
    user: Any, device: Device, submitted: object, signals: list[Any]
) -> None:
    challenge = issue(user, device)
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, submitted, purpose=Purpose.LOGIN, user=user)
    assert refresh(challenge).attempts == 1
    assert [name for name, _ in signals] == ["issued", "failed"]


def test_unicode_digits_of_the_right_code_count_as_a_failure(user: Any, device: Device) -> None:
    challenge = issue(user, device)
    code = last_code()
    for zero in (0xFF10, 0x0660):  # full-width, Arabic-Indic
        lookalike = "".join(chr(zero + int(digit)) for digit in code)
        with pytest.raises(InvalidCodeError) as info:
            verify_challenge(challenge.public_id, lookalike, purpose=Purpose.LOGIN)
        assert info.value.reason == "malformed"
    assert refresh(challenge).attempts == 2
    verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


@pytest.mark.parametrize("seconds", [599, 601])
def test_code_expires_after_ttl(clock: Any, user: Any, device: Device, seconds: int) -> None:
    challenge = issue(user, device)
    code = last_code()
    clock.shift(seconds)
    if seconds < 600:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)
        assert refresh(challenge).status == ChallengeStatus.VERIFIED
        return
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)
    assert info.value.reason == "expired"
    challenge = refresh(challenge)
    assert challenge.status == ChallengeStatus.EXPIRED
    assert challenge.attempts == 0
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


def test_code_is_expired_at_exactly_ttl(clock: Any, user: Any, device: Device) -> None:
    challenge = issue(user, device)
    clock.shift(600)
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, last_code(), purpose=Purpose.LOGIN)


@pytest.mark.parametrize(
    ("issued_for", "submitted_for"),
    [
        (Purpose.LOGIN, Purpose.STEP_UP),
        (Purpose.LOGIN, Purpose.PASSWORD_RESET),
        (Purpose.LOGIN, Purpose.ENROLLMENT),
        (Purpose.STEP_UP, Purpose.LOGIN),
        (Purpose.PASSWORD_RESET, Purpose.LOGIN),
        (Purpose.ENROLLMENT, Purpose.LOGIN),
    ],
)
def test_code_only_works_for_its_purpose(
    user: Any, device: Device, issued_for: str, submitted_for: str
) -> None:
    challenge = issue(user, device, purpose=issued_for)
    code = last_code()
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, code, purpose=submitted_for, user=user)
    assert info.value.reason == "unknown"
    assert refresh(challenge).status == ChallengeStatus.PENDING
    verify_challenge(challenge.public_id, code, purpose=issued_for, user=user)


def test_other_users_challenge_is_refused(make_user: Any, user: Any, device: Device) -> None:
    bob = make_user("bob", phone="+233201234567")
    challenge = issue(user, device)
    code = last_code()
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, user=bob)
    assert info.value.reason == "unknown"
    assert refresh(challenge).status == ChallengeStatus.PENDING


@pytest.mark.parametrize("public_id", ["", "unknown", "x" * 65, None, 42, ["a"]])
def test_unknown_challenge_is_refused(public_id: object, signals: list[Any]) -> None:
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(public_id, "123456", purpose=Purpose.LOGIN)
    assert info.value.reason == "unknown"
    assert signals == [
        ("failed", {"sender": Challenge, "challenge": None, "reason": "unknown", "request": None})
    ]


def test_fifth_wrong_code_locks_the_challenge(
    user: Any, device: Device, signals: list[Any]
) -> None:
    challenge = issue(user, device)
    code = last_code()
    for attempt in range(1, 5):
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, wrong(code), purpose=Purpose.LOGIN)
        assert refresh(challenge).attempts == attempt
        assert challenge.attempts_left == 5 - attempt
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, wrong(code), purpose=Purpose.LOGIN)
    challenge = refresh(challenge)
    assert (challenge.status, challenge.attempts, challenge.code_hash) == ("locked", 5, "")
    # Not even the right code is accepted now, and no further attempt is counted.
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)
    assert refresh(challenge).attempts == 5
    names = [name for name, _ in signals]
    assert names == ["issued", "failed", "failed", "failed", "failed", "failed", "locked", "failed"]


def test_max_attempts_setting(user: Any, device: Device) -> None:
    with otp_settings(MAX_ATTEMPTS=2):
        challenge = issue(user, device)
    assert challenge.max_attempts == 2
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, "000000", purpose=Purpose.LOGIN)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, "000000", purpose=Purpose.LOGIN)


def test_signals_carry_the_challenge_never_the_code(
    user: Any, device: Device, signals: list[Any], rf: Any
) -> None:
    request = rf.post("/")
    with otp_settings(MAX_ATTEMPTS=2):
        challenge = issue(user, device, request=request)
        code = last_code()
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, wrong(code), purpose=Purpose.LOGIN)
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, request=request)
        other = issue(user, device)
        other_code = last_code()
        for _ in range(2):
            with pytest.raises(OTPErrors):
                verify_challenge(other.public_id, wrong(other_code), purpose=Purpose.LOGIN)
    assert [(name, kwargs["challenge"].pk) for name, kwargs in signals] == [
        ("issued", challenge.pk),
        ("failed", challenge.pk),
        ("verified", challenge.pk),
        ("issued", other.pk),
        ("failed", other.pk),
        ("failed", other.pk),
        ("locked", other.pk),
    ]
    keys = {name: set(kwargs) for name, kwargs in signals}
    assert keys == {
        "issued": {"sender", "challenge", "request", "resend"},
        "verified": {"sender", "challenge", "request"},
        "failed": {"sender", "challenge", "reason", "request"},
        "locked": {"sender", "challenge", "request"},
    }
    assert signals[0][1]["request"] is request
    assert signals[0][1]["resend"] is False
    assert signals[2][1]["request"] is request
    assert [kw["reason"] for name, kw in signals if name == "failed"] == [
        "wrong",
        "wrong",
        "challenge_locked",
    ]
    assert all(kwargs["sender"] is Challenge for _, kwargs in signals)
    for _, kwargs in signals:
        carried = repr(kwargs) + repr(vars(kwargs["challenge"]))
        assert code not in carried
        assert other_code not in carried


OTPErrors = (InvalidCodeError, ChallengeLockedError)


# Resend ----------------------------------------------------------------------------------


def test_resend_replaces_the_code(
    clock: Any, user: Any, device: Device, outbox, signals: list[Any]
) -> None:
    challenge = issue(user, device)
    old = last_code()
    clock.shift(60)
    resent = resend_challenge(challenge.public_id, user=user)
    new = last_code()
    assert len(outbox) == 2
    assert resent.pk == challenge.pk
    assert refresh(challenge).send_count == 2
    assert challenge.provider_reference == "locmem-2"
    assert signals[-1][0] == "issued"
    assert signals[-1][1]["resend"] is True
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, old, purpose=Purpose.LOGIN)
    verify_challenge(challenge.public_id, new, purpose=Purpose.LOGIN)


def test_resend_restarts_the_expiry(clock: Any, user: Any, device: Device) -> None:
    challenge = issue(user, device)
    clock.shift(300)
    resend_challenge(challenge.public_id, user=user)
    code = last_code()
    clock.shift(599)  # 14 min 59 s after the first send, 9 min 59 s after the resend
    verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


def test_resend_inside_cooldown_calls_no_provider(
    clock: Any, user: Any, device: Device, outbox
) -> None:
    challenge = issue(user, device)
    code = last_code()
    stored_hash = refresh(challenge).code_hash
    with mock.patch.object(BaseProvider, "send") as send:
        for elapsed, expected in ((0, 60), (1, 59), (58.5, 2), (59.5, 1)):
            clock.move_to(START + timedelta(seconds=elapsed))
            assert resend_available_in(challenge) == expected
            with pytest.raises(ResendTooSoonError) as info:
                resend_challenge(challenge.public_id, user=user)
            assert info.value.retry_after == expected
            assert info.value.code == "resend_too_soon"
    send.assert_not_called()
    assert len(outbox) == 1
    challenge = refresh(challenge)
    assert (challenge.send_count, challenge.code_hash) == (1, stored_hash)
    clock.move_to(START + timedelta(seconds=60))
    assert resend_available_in(challenge) == 0
    resend_challenge(challenge.public_id, user=user)
    assert len(outbox) == 2
    assert last_code() != code


def test_resend_cooldown_setting(clock: Any, user: Any, device: Device) -> None:
    with otp_settings(RESEND_COOLDOWN=0):
        challenge = issue(user, device)
        resend_challenge(challenge.public_id, user=user)
        resend_challenge(challenge.public_id, user=user)
    assert refresh(challenge).send_count == 3


def test_resend_limit(clock: Any, user: Any, device: Device, outbox) -> None:
    challenge = issue(user, device)
    for _ in range(3):
        clock.shift(60)
        resend_challenge(challenge.public_id, user=user)
    clock.shift(60)
    with pytest.raises(ResendLimitError):
        resend_challenge(challenge.public_id, user=user)
    assert len(outbox) == 4
    assert refresh(challenge).send_count == 4
    verify_challenge(challenge.public_id, last_code(), purpose=Purpose.LOGIN)


def test_no_resends_when_max_resends_is_zero(clock: Any, user: Any, device: Device) -> None:
    with otp_settings(MAX_RESENDS=0):
        challenge = issue(user, device)
        clock.shift(3600)
        with pytest.raises(ResendLimitError):
            resend_challenge(challenge.public_id, user=user)


def test_resend_keeps_wrong_attempts(clock: Any, user: Any, device: Device) -> None:
    challenge = issue(user, device)
    code = last_code()
    for _ in range(3):
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, wrong(code), purpose=Purpose.LOGIN)
    clock.shift(60)
    resend_challenge(challenge.public_id, user=user)
    new = last_code()
    assert refresh(challenge).attempts == 3
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, wrong(new), purpose=Purpose.LOGIN)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, wrong(new), purpose=Purpose.LOGIN)
    assert refresh(challenge).attempts == 5


def test_resend_refused_for_others_and_finished_challenges(
    clock: Any, make_user: Any, user: Any, device: Device, outbox
) -> None:
    bob = make_user("bob", phone="+233201234567")
    challenge = issue(user, device)
    clock.shift(60)
    with pytest.raises(InvalidCodeError):
        resend_challenge(challenge.public_id, user=bob)
    with pytest.raises(InvalidCodeError):
        resend_challenge("unknown", user=user)
    verify_challenge(challenge.public_id, last_code(), purpose=Purpose.LOGIN)
    with pytest.raises(InvalidCodeError):
        resend_challenge(challenge.public_id, user=user)
    locked = issue(user, device)
    Challenge.objects.filter(pk=locked.pk).update(max_attempts=1)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(locked.public_id, "000000", purpose=Purpose.LOGIN)
    clock.shift(60)
    with pytest.raises(ChallengeLockedError):
        resend_challenge(locked.public_id, user=user)
    assert len(outbox) == 2


# Delivery failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("down", provider="locmem", status=503),
        RuntimeError("provider bug"),
        TimeoutError("read timed out"),
        ConnectionError("reset by peer"),
        KeyError("message_id"),
        ValueError("bad JSON"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_provider_failure_becomes_delivery_error(
    user: Any,
    device: Device,
    error: Exception,
    signals: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts: list[str] = []

    def capture(sender: Any, message: Any, **kwargs: Any) -> None:
        texts.append(message.text)

    locmem.fail_next(error)
    pre_send.connect(capture)
    try:
        with caplog.at_level("DEBUG"), pytest.raises(DeliveryError) as info:
            issue(user, device)
    finally:
        pre_send.disconnect(capture)
    assert type(info.value) in (DeliveryError, ProviderError)
    if not isinstance(error, ProviderError):
        assert info.value.__cause__ is error
    challenge = Challenge.objects.get()
    assert challenge.status == ChallengeStatus.SEND_FAILED
    assert challenge.code_hash == ""
    assert challenge.failure_reason == info.value.code
    assert signals == []
    # The failure is logged, without the code or the number.
    assert "otp_auth" in caplog.text
    (text,) = texts
    code = re.search(r"\d{6}", text).group(0)  # type: ignore[union-attr]
    assert code not in caplog.text
    assert PHONE not in caplog.text
    with pytest.raises(InvalidCodeError) as refused:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)
    assert refused.value.reason == ChallengeStatus.SEND_FAILED


def test_provider_returning_garbage_is_a_delivery_error(
    user: Any, device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locmem.LocmemProvider, "deliver", lambda self, message: "ok")
    with pytest.raises(DeliveryError):
        issue(user, device)
    assert Challenge.objects.get().status == ChallengeStatus.SEND_FAILED


def test_failed_resend_voids_the_challenge(clock: Any, user: Any, device: Device) -> None:
    challenge = issue(user, device)
    code = last_code()
    clock.shift(60)
    locmem.fail_next(RuntimeError("boom"))
    with pytest.raises(DeliveryError) as info:
        resend_challenge(challenge.public_id, user=user)
    assert type(info.value) is DeliveryError
    challenge = refresh(challenge)
    assert (challenge.status, challenge.code_hash) == (ChallengeStatus.SEND_FAILED, "")
    assert challenge.failure_reason == "delivery_failed"
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


# Cancel ----------------------------------------------------------------------------------


def test_cancel(make_user: Any, user: Any, device: Device) -> None:
    bob = make_user("bob", phone="+233201234567")
    challenge = issue(user, device)
    code = last_code()
    assert cancel_challenge(None) is False
    assert cancel_challenge("") is False
    assert cancel_challenge(challenge.public_id, user=bob) is False
    assert cancel_challenge(challenge.public_id, user=user) is True
    assert cancel_challenge(challenge.public_id) is False
    challenge = refresh(challenge)
    assert (challenge.status, challenge.code_hash) == (ChallengeStatus.CANCELLED, "")
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)
    assert info.value.reason == ChallengeStatus.CANCELLED


def test_cancel_leaves_finished_challenges_alone(user: Any, device: Device) -> None:
    challenge = issue(user, device)
    verify_challenge(challenge.public_id, last_code(), purpose=Purpose.LOGIN)
    assert cancel_challenge(challenge.public_id) is False
    assert refresh(challenge).status == ChallengeStatus.VERIFIED


# Hosted verification ---------------------------------------------------------------------


class HostedProvider(BaseProvider):
    """A vendor that generates, sends and checks codes itself."""

    provider_name: ClassVar[str] = "hosted"
    hosted_verify: ClassVar[bool] = True
    calls: ClassVar[list[tuple[Any, ...]]] = []
    right_code: ClassVar[str] = "424242"

    def start(self, verification: HostedVerification) -> DeliveryResult:
        self.calls.append(("start", verification))
        return DeliveryResult(
            provider=self.provider_name, status="queued", reference=f"VE{len(self.calls)}"
        )

    def check(self, reference: str, destination: str, code: str) -> bool:
        self.calls.append(("check", reference, destination, code))
        return code == self.right_code


@pytest.fixture
def hosted() -> Iterator[list[tuple[Any, ...]]]:
    HostedProvider.calls = []
    with otp_settings(PROVIDERS={"default": {"BACKEND": f"{__name__}.HostedProvider"}}):
        yield HostedProvider.calls


def test_hosted_issue_starts_a_verification(
    hosted: list[Any], user: Any, device: Device, outbox
) -> None:
    challenge = refresh(issue(user, device))
    assert outbox == []
    assert challenge.code_hash == ""
    assert challenge.provider_reference == "VE1"
    assert challenge.delivery_status == "queued"
    ((name, verification),) = hosted
    assert name == "start"
    assert verification == HostedVerification(
        destination=PHONE,
        channel="sms",
        purpose="login",
        code_length=6,
        ttl=600,
        metadata={"challenge": challenge.public_id},
    )


def test_hosted_verify_asks_the_vendor(hosted: list[Any], user: Any, device: Device) -> None:
    challenge = issue(user, device)
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, "111111", purpose=Purpose.LOGIN)
    assert refresh(challenge).attempts == 1
    verify_challenge(challenge.public_id, " 424 242", purpose=Purpose.LOGIN)
    assert hosted[1:] == [("check", "VE1", PHONE, "111111"), ("check", "VE1", PHONE, "424242")]
    assert refresh(challenge).status == ChallengeStatus.VERIFIED


def test_hosted_malformed_code_counts_without_asking(
    hosted: list[Any], user: Any, device: Device
) -> None:
    challenge = issue(user, device)
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, "12ab", purpose=Purpose.LOGIN)
    assert refresh(challenge).attempts == 1
    assert [call[0] for call in hosted] == ["start"]


def test_hosted_wrong_codes_lock(hosted: list[Any], user: Any, device: Device) -> None:
    challenge = issue(user, device)
    for _ in range(4):
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, "111111", purpose=Purpose.LOGIN)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, "111111", purpose=Purpose.LOGIN)
    checks = len(hosted)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, "424242", purpose=Purpose.LOGIN)
    assert len(hosted) == checks  # a locked challenge never reaches the vendor


def test_hosted_resend_starts_again(
    clock: Any, hosted: list[Any], user: Any, device: Device
) -> None:
    challenge = issue(user, device)
    clock.shift(60)
    resend_challenge(challenge.public_id, user=user)
    challenge = refresh(challenge)
    assert challenge.provider_reference == "VE2"
    assert challenge.code_hash == ""
    verify_challenge(challenge.public_id, "424242", purpose=Purpose.LOGIN)
    assert hosted[-1] == ("check", "VE2", PHONE, "424242")


def test_hosted_start_failure(
    hosted: list[Any], user: Any, device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Any, verification: Any) -> Any:
        raise ProviderError("quota", provider="hosted", status=429)

    monkeypatch.setattr(HostedProvider, "start", fail)
    with pytest.raises(ProviderError):
        issue(user, device)
    assert Challenge.objects.get().status == ChallengeStatus.SEND_FAILED
