"""Races on one challenge, with real threads and one database connection each.

Only a database with row locks can prove these (SQLite in memory gives each thread its
own empty database), so they run against PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pytest tests/test_concurrency.py
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.exceptions import ChallengeLockedError, InvalidCodeError, ResendTooSoonError
from otp_auth.models import Challenge
from otp_auth.services import challenges, issue_challenge, resend_challenge, verify_challenge
from otp_auth.signals import challenge_locked, challenge_verified
from tests.concurrency import race, require_postgresql
from tests.conftest import last_code, otp_settings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql()


@pytest.fixture
def overlap(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Widen the window between reading a challenge and writing it back, and record how
    many threads were ever inside it at once (1 when the row lock serialises them)."""
    real = challenges._code_matches
    guard = threading.Lock()
    state = {"inside": 0, "most": 0, "calls": 0}

    def slow(challenge: Challenge, code: str) -> bool:
        with guard:
            state["inside"] += 1
            state["calls"] += 1
            state["most"] = max(state["most"], state["inside"])
        try:
            time.sleep(0.02)
            return real(challenge, code)
        finally:
            with guard:
                state["inside"] -= 1

    monkeypatch.setattr(challenges, "_code_matches", slow)
    return state


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


def outcome(result: Any) -> str:
    return "ok" if isinstance(result, Challenge) else type(result).__name__


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def issue(user: Any) -> tuple[Challenge, str]:
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)
    return challenge, last_code()


def test_same_right_code_twice_at_once_succeeds_once(
    user: Any, overlap: dict[str, int], signalled: Counter[str]
) -> None:
    challenge, code = issue(user)
    results = race(2, lambda _: verify_challenge(challenge.public_id, code, purpose="login"))
    assert sorted(outcome(r) for r in results) == ["InvalidCodeError", "ok"]
    (refused,) = [r for r in results if isinstance(r, InvalidCodeError)]
    assert refused.reason == "used"
    assert overlap["most"] == 1
    assert signalled["verified"] == 1
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.VERIFIED
    assert challenge.attempts == 0


def test_parallel_wrong_codes_each_count(user: Any, overlap: dict[str, int]) -> None:
    with otp_settings(MAX_ATTEMPTS=10):
        challenge, code = issue(user)
    results = race(4, lambda _: verify_challenge(challenge.public_id, wrong(code), purpose="login"))
    assert [outcome(r) for r in results] == ["InvalidCodeError"] * 4
    assert overlap["most"] == 1
    challenge.refresh_from_db()
    assert challenge.attempts == 4
    assert challenge.status == ChallengeStatus.PENDING
    verify_challenge(challenge.public_id, code, purpose="login")


def test_parallel_wrong_codes_stop_at_the_limit(
    user: Any, overlap: dict[str, int], signalled: Counter[str]
) -> None:
    """8 wrong codes at once, limit 5: the row lock orders them. Attempts 1-4 are refused,
    the 5th locks the challenge, and the last 3 find it locked without a code check."""
    challenge, code = issue(user)
    assert challenge.max_attempts == 5
    results = race(8, lambda _: verify_challenge(challenge.public_id, wrong(code), purpose="login"))
    assert Counter(outcome(r) for r in results) == {
        "InvalidCodeError": 4,
        "ChallengeLockedError": 4,
    }
    assert overlap["calls"] == 5
    assert overlap["most"] == 1
    assert signalled["locked"] == 1
    challenge.refresh_from_db()
    assert challenge.attempts == 5
    assert challenge.status == ChallengeStatus.LOCKED
    assert challenge.code_hash == ""
    try:
        verify_challenge(challenge.public_id, code, purpose="login")
    except ChallengeLockedError:
        pass
    else:
        raise AssertionError("the right code was accepted after the lock")


def test_right_code_among_wrong_ones(user: Any, overlap: dict[str, int]) -> None:
    """One right and five wrong codes at once. If k wrong ones get the lock first, the
    right one succeeds after k counted failures and the rest find the code used; if all
    five come first, the challenge is locked and the right one is refused."""
    challenge, code = issue(user)
    codes = [code] + [wrong(code)] * 5
    results = race(6, lambda i: verify_challenge(challenge.public_id, codes[i], purpose="login"))
    challenge.refresh_from_db()
    assert overlap["most"] == 1
    if isinstance(results[0], Challenge):
        k = challenge.attempts
        assert challenge.status == ChallengeStatus.VERIFIED
        assert k < 5
        assert overlap["calls"] == k + 1
        reasons = sorted(getattr(r, "reason", "") for r in results[1:])
        assert reasons == sorted(["wrong"] * k + ["used"] * (5 - k))
    else:
        assert isinstance(results[0], ChallengeLockedError)
        assert challenge.status == ChallengeStatus.LOCKED
        assert challenge.attempts == 5
        assert overlap["calls"] == 5


def test_parallel_resends_send_once(user: Any) -> None:
    challenge, _ = issue(user)
    Challenge.objects.filter(pk=challenge.pk).update(
        last_sent_at=timezone.now() - timedelta(seconds=120)
    )
    results = race(3, lambda _: resend_challenge(challenge.public_id, user=user))
    assert Counter(outcome(r) for r in results) == {"ok": 1, "ResendTooSoonError": 2}
    assert all(r.retry_after > 0 for r in results if isinstance(r, ResendTooSoonError))
    challenge.refresh_from_db()
    assert challenge.send_count == 2
    verify_challenge(challenge.public_id, last_code(), purpose="login")
