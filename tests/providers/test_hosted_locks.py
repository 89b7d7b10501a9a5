"""Hosted verify asks the vendor with no row lock held, and still counts exactly.

The check is reserved under the challenge and lockout row locks, the vendor is asked
after the commit, and the answer is recorded under the locks again. The races run in
real threads on PostgreSQL (one connection each):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        pytest tests/providers/test_hosted_locks.py
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.exceptions import (
    ChallengeLockedError,
    InvalidCodeError,
    ProviderError,
    RateLimitedError,
)
from otp_auth.models import Challenge, Lockout
from otp_auth.providers import get_provider
from otp_auth.providers.base import BaseProvider, DeliveryResult, HostedVerification
from otp_auth.services import issue_challenge, verify_challenge
from otp_auth.signals import challenge_locked, challenge_verified
from tests.concurrency import outcome_names, race, require_postgresql
from tests.conftest import otp_settings
from tests.fakes import FakeArkesel, FakeTwilio
from tests.fakes.server import Reply

from .conftest import arkesel_options, twilio_options

RIGHT = "424242"
WRONG = "111111"


class SlowVendor(BaseProvider):
    """An in-process hosted-verify vendor whose checks take ``delay`` seconds and say
    how many were under way at once (1 when something serialises them)."""

    provider_name: ClassVar[str] = "slow"
    hosted_verify: ClassVar[bool] = True
    delay: ClassVar[float] = 0.2
    fail: ClassVar[bool] = False
    guard = threading.Lock()
    seen: ClassVar[dict[str, int]] = {}

    @classmethod
    def reset(cls) -> None:
        cls.delay, cls.fail = 0.2, False
        cls.seen = {"inside": 0, "most": 0, "checks": 0}

    def start(self, verification: HostedVerification) -> DeliveryResult:
        return DeliveryResult(provider=self.provider_name, status="queued", reference="VE1")

    def check(self, reference: str, destination: str, code: str) -> bool:
        seen = type(self).seen
        with self.guard:
            seen["inside"] += 1
            seen["checks"] += 1
            seen["most"] = max(seen["most"], seen["inside"])
        try:
            time.sleep(self.delay)
            if self.fail:
                raise ProviderError("down", provider=self.provider_name, status=503)
            return code == RIGHT
        finally:
            with self.guard:
                seen["inside"] -= 1


@pytest.fixture
def slow_vendor(settings: Any) -> Iterator[type[SlowVendor]]:
    SlowVendor.reset()
    settings.OTP_AUTH = {
        **settings.OTP_AUTH,
        "PROVIDERS": {"default": {"BACKEND": f"{__name__}.SlowVendor"}},
    }
    get_provider.cache_clear()
    yield SlowVendor
    get_provider.cache_clear()


@pytest.fixture
def signalled() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()

    def on_verified(sender: Any, **kwargs: Any) -> None:
        counts["verified"] += 1

    def on_locked(sender: Any, **kwargs: Any) -> None:
        counts["locked"] += 1

    challenge_verified.connect(on_verified)
    challenge_locked.connect(on_locked)
    yield counts
    challenge_verified.disconnect(on_verified)
    challenge_locked.disconnect(on_locked)


def issue(user: Any) -> Challenge:
    return issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)


def check(challenge: Challenge, code: str) -> Callable[[int], Any]:
    return lambda _: verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN)


def rows(challenge: Challenge) -> tuple[Challenge, Lockout]:
    return Challenge.objects.get(pk=challenge.pk), Lockout.objects.get(user_id=challenge.user_id)


def assert_nothing_in_flight(challenge: Challenge, state: Lockout) -> None:
    assert (challenge.checks_in_flight, challenge.checks_due_by) == (0, None)
    assert (state.checks_in_flight, state.checks_due_by) == (0, None)


# No lock across the vendor call ----------------------------------------------------------


def try_locks(challenge_pk: int, user_id: int) -> str:
    """From a new connection: lock both rows without waiting; "free" or the error."""
    try:
        with transaction.atomic():
            Challenge.objects.select_for_update(nowait=True).get(pk=challenge_pk)
            Lockout.objects.select_for_update(nowait=True).get(user_id=user_id)
        return "free"
    except DatabaseError as exc:
        return f"locked: {exc}"
    finally:
        connection.close()


def probing(
    handler: Callable[[dict[str, Any]], Reply], challenge: list[Challenge], found: list[str]
) -> Callable[[dict[str, Any]], Reply]:
    """Wrap a fake vendor's check handler: while serving the check, try the row locks."""

    def probe(data: dict[str, Any]) -> Reply:
        row = challenge[0]
        found.append(try_locks(row.pk, row.user_id))
        return handler(data)

    return probe


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vendor", ["twilio", "arkesel"])
def test_no_row_is_locked_while_the_vendor_checks(
    vendor: str,
    user: Any,
    use_providers: Any,
    fake_twilio: FakeTwilio,
    fake_arkesel: FakeArkesel,
) -> None:
    require_postgresql()
    slow = {"read_timeout": 5.0}
    found: list[str] = []
    issued: list[Challenge] = []
    if vendor == "twilio":
        options = twilio_options(fake_twilio, service_sid=fake_twilio.service_sid, **slow)
        use_providers(default=("otp_auth.providers.twilio.VerifyProvider", options))
        fake_twilio.verify_check = probing(fake_twilio.verify_check, issued, found)
    else:
        options = arkesel_options(fake_arkesel, **slow)
        use_providers(default=("otp_auth.providers.arkesel.VerifyProvider", options))
        fake_arkesel.otp_verify = probing(fake_arkesel.otp_verify, issued, found)
    issued.append(issue(user))
    if vendor == "twilio":
        code = fake_twilio.code_for("+233241234567")
    else:
        code = fake_arkesel.codes["233241234567"][0]
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(InvalidCodeError):
        verify_challenge(issued[0].public_id, wrong, purpose=Purpose.LOGIN)
    verify_challenge(issued[0].public_id, code, purpose=Purpose.LOGIN)
    assert found == ["free", "free"]
    challenge, state = rows(issued[0])
    # The wrong code stays counted on the challenge; the right one cleared the lockout.
    assert (challenge.status, challenge.attempts, state.failures) == ("verified", 1, 0)
    assert_nothing_in_flight(challenge, state)


# Exact counts, with the checks really under way at once -----------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_right_codes_at_once_succeed_once(
    user: Any, slow_vendor: type[SlowVendor], signalled: Counter[str]
) -> None:
    require_postgresql()
    challenge = issue(user)
    results = race(2, check(challenge, RIGHT))
    assert slow_vendor.seen["most"] == 2  # both were with the vendor at once: no lock
    assert outcome_names(results) == {"ok": 1, "InvalidCodeError": 1}
    (refused,) = [r for r in results if isinstance(r, InvalidCodeError)]
    assert refused.reason == "used"
    assert signalled["verified"] == 1
    challenge, state = rows(challenge)
    assert (challenge.status, challenge.attempts) == (ChallengeStatus.VERIFIED, 0)
    assert_nothing_in_flight(challenge, state)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_each_count(user: Any, slow_vendor: type[SlowVendor]) -> None:
    require_postgresql()
    with otp_settings(MAX_ATTEMPTS=10):
        challenge = issue(user)
    results = race(4, check(challenge, WRONG))
    assert outcome_names(results) == {"InvalidCodeError": 4}
    assert {r.reason for r in results} == {"wrong"}
    assert slow_vendor.seen["checks"] == 4
    assert slow_vendor.seen["most"] > 1
    challenge, state = rows(challenge)
    assert (challenge.status, challenge.attempts, state.failures) == ("pending", 4, 4)
    assert_nothing_in_flight(challenge, state)
    verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_stop_at_the_limit(
    user: Any, slow_vendor: type[SlowVendor], signalled: Counter[str]
) -> None:
    """8 wrong codes at once, limit 5: five are reserved and go to the vendor, three are
    refused before it; the last of the five to come back locks the challenge."""
    require_postgresql()
    challenge = issue(user)
    assert challenge.max_attempts == 5
    results = race(8, check(challenge, WRONG))
    assert outcome_names(results) == {"InvalidCodeError": 4, "ChallengeLockedError": 4}
    assert slow_vendor.seen["checks"] == 5
    assert signalled["locked"] == 1
    challenge, state = rows(challenge)
    assert (challenge.status, challenge.attempts, state.failures) == ("locked", 5, 5)
    assert_nothing_in_flight(challenge, state)
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    assert slow_vendor.seen["checks"] == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_right_code_among_wrong_ones(user: Any, slow_vendor: type[SlowVendor]) -> None:
    """One right and five wrong codes at once, limit 5: the right one is either out with
    the vendor with at most four wrong ones, and accepted, or finds all five attempts
    taken and is refused without being checked."""
    require_postgresql()
    challenge = issue(user)
    codes = [RIGHT] + [WRONG] * 5
    results = race(6, lambda i: verify_challenge(challenge.public_id, codes[i], purpose="login"))
    challenge, state = rows(challenge)
    assert_nothing_in_flight(challenge, state)
    wrong = sum(isinstance(r, InvalidCodeError) and r.reason == "wrong" for r in results)
    if isinstance(results[0], Challenge):
        assert challenge.status == ChallengeStatus.VERIFIED
        assert challenge.attempts == wrong < 5
        assert slow_vendor.seen["checks"] == wrong + 1  # the others were refused before it
    else:
        assert isinstance(results[0], ChallengeLockedError)
        assert (challenge.status, challenge.attempts) == (ChallengeStatus.LOCKED, 5)
        assert slow_vendor.seen["checks"] == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checks_in_flight_never_pass_the_lockout(user: Any, slow_vendor: type[SlowVendor]) -> None:
    """Lockout after 3 refused codes: of 6 wrong codes at once, the vendor judges only
    the 3 that the one-at-a-time order would have judged; the others wait their turn
    (then meet the lock)."""
    require_postgresql()
    with otp_settings(MAX_ATTEMPTS=10, LOCKOUT_THRESHOLD=3, VERIFY_DELAY_MAX=0):
        challenge = issue(user)
        results = race(6, check(challenge, WRONG))
        assert slow_vendor.seen["checks"] == 3
        assert sum(isinstance(r, InvalidCodeError) for r in results) == 3
        assert sum(isinstance(r, RateLimitedError) for r in results) == 3
        challenge, state = rows(challenge)
        assert (challenge.attempts, state.failures) == (3, 3)
        assert state.locked_until is not None and state.locked_until > timezone.now()
        assert_nothing_in_flight(challenge, state)


# Vendor errors, faults and stale reservations ---------------------------------------------


@pytest.mark.django_db
def test_vendor_error_gives_the_attempt_back(user: Any, slow_vendor: type[SlowVendor]) -> None:
    slow_vendor.delay, slow_vendor.fail = 0, True
    challenge = issue(user)
    with pytest.raises(InvalidCodeError) as info:
        verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    assert info.value.reason == "provider_error"
    challenge, state = rows(challenge)
    assert (challenge.status, challenge.attempts, state.failures) == ("pending", 0, 0)
    assert_nothing_in_flight(challenge, state)


@pytest.mark.django_db
def test_a_provider_fault_keeps_the_attempt_and_frees_its_place(
    user: Any, slow_vendor: type[SlowVendor], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, reference: str, destination: str, code: str) -> bool:
        raise KeyError("a bug in the provider")

    monkeypatch.setattr(SlowVendor, "check", broken)
    challenge = issue(user)
    with pytest.raises(KeyError):
        verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    challenge, state = rows(challenge)
    assert (challenge.attempts, state.failures) == (1, 0)
    assert challenge.checks_in_flight == state.checks_in_flight == 0


@pytest.mark.django_db
def test_stale_reservations_lapse(user: Any, slow_vendor: type[SlowVendor]) -> None:
    """A worker that died mid-check: its attempt stays counted, its place lapses."""
    slow_vendor.delay = 0
    with otp_settings(LOCKOUT_THRESHOLD=1):
        challenge = issue(user)
        past = timezone.now() - timedelta(seconds=1)
        Challenge.objects.filter(pk=challenge.pk).update(
            attempts=4, checks_in_flight=1, checks_due_by=past
        )
        Lockout.objects.filter(user=user).update(checks_in_flight=1, checks_due_by=past)
        # Live, the place would stop this code (a lock at the first refusal); stale, not.
        verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    challenge, state = rows(challenge)
    assert (challenge.status, challenge.attempts) == (ChallengeStatus.VERIFIED, 4)
    assert_nothing_in_flight(challenge, state)


@pytest.mark.django_db
def test_a_live_reservation_holds_the_lockout_back(
    user: Any, slow_vendor: type[SlowVendor]
) -> None:
    with otp_settings(LOCKOUT_THRESHOLD=1):
        challenge = issue(user)
        soon = timezone.now() + timedelta(seconds=30)
        Lockout.objects.filter(user=user).update(checks_in_flight=1, checks_due_by=soon)
        with pytest.raises(RateLimitedError) as info:
            verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    assert (info.value.limit, info.value.retry_after) == ("verify_delay", 1)
    assert slow_vendor.seen["checks"] == 0


@pytest.mark.django_db
def test_the_last_attempt_stale_in_flight_locks(user: Any, slow_vendor: type[SlowVendor]) -> None:
    challenge = issue(user)
    past = timezone.now() - timedelta(seconds=1)
    Challenge.objects.filter(pk=challenge.pk).update(
        attempts=5, checks_in_flight=1, checks_due_by=past
    )
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, RIGHT, purpose=Purpose.LOGIN)
    assert Challenge.objects.get(pk=challenge.pk).status == ChallengeStatus.LOCKED
    assert slow_vendor.seen["checks"] == 0
