"""R81: two redemptions of one reset code at once, with different new passwords, give
exactly one new password. Real threads, one database connection each: only a database
with row locks can show it (SQLite in memory gives each thread its own empty database).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        pytest tests/test_password_reset_concurrency.py -p no:xdist
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from otp_auth.exceptions import InvalidCodeError
from otp_auth.models import Challenge, PasswordReset
from otp_auth.services import challenges
from otp_auth.services import password_reset as reset_service
from tests.concurrency import race, require_postgresql
from tests.conftest import last_code, otp_settings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORDS = ["first new passphrase 11", "second new passphrase 22", "third new passphrase 33"]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql()


@pytest.fixture
def slow_check(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Widen the window between reading the code's row and writing it back, and record
    how many threads were inside it at once."""
    real = challenges._code_matches
    guard = threading.Lock()
    state = {"inside": 0, "most": 0}

    def slow(challenge: Challenge, code: str) -> bool | None:
        with guard:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        try:
            time.sleep(0.05)
            return real(challenge, code)
        finally:
            with guard:
                state["inside"] -= 1

    monkeypatch.setattr(challenges, "_code_matches", slow)
    return state


def requested(username: str = "alice") -> tuple[str, str]:
    started = reset_service.request_reset(username)
    started.deliver()
    return started.reset.public_id, last_code()


def redeem(reset_id: str, code: str, password: str) -> Any:
    """What a client does with the code: verify it, then set its password."""
    _reset, grant = reset_service.verify_reset(reset_id, code)
    return reset_service.complete_reset(grant, password)


def test_the_same_code_redeemed_twice_at_once_sets_one_password(
    user: Any, slow_check: dict[str, int]
) -> None:
    reset_id, code = requested()
    with otp_settings(PASSWORD_RESET_SECOND_FACTOR=False):
        results = race(3, lambda i: redeem(reset_id, code, PASSWORDS[i]))

    winners = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert Counter(type(r).__name__ for r in results if isinstance(r, Exception)) == {
        "InvalidCodeError": 2
    }
    assert all(r.reason == "used" for r in results if isinstance(r, InvalidCodeError))
    assert slow_check["most"] == 1
    fresh = get_user_model().objects.get(pk=user.pk)
    assert fresh.check_password(PASSWORDS[winners[0]])
    assert PasswordReset.objects.get().status == PasswordReset.Status.COMPLETED


def test_the_same_grant_used_twice_at_once_sets_one_password(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_id, code = requested()
    _reset, grant = reset_service.verify_reset(reset_id, code)
    real = reset_service._revoke_everything

    def slow_revoke(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.05)  # inside the locked transaction: the other thread must wait
        real(*args, **kwargs)

    monkeypatch.setattr(reset_service, "_revoke_everything", slow_revoke)
    with otp_settings(PASSWORD_RESET_SECOND_FACTOR=False):
        results = race(3, lambda i: reset_service.complete_reset(grant, PASSWORDS[i]))

    winners = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    losers = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, reset_service.ResetGrantError) for r in losers), losers
    fresh = get_user_model().objects.get(pk=user.pk)
    assert fresh.check_password(PASSWORDS[winners[0]])


def test_parallel_wrong_codes_each_count_and_lock_once(
    user: Any, slow_check: dict[str, int]
) -> None:
    reset_id, code = requested()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    results = race(7, lambda _: reset_service.verify_reset(reset_id, wrong))

    assert Counter(type(r).__name__ for r in results) == {
        "InvalidCodeError": 4,
        "ChallengeLockedError": 3,
    }
    challenge = PasswordReset.objects.select_related("challenge").get().challenge
    assert challenge is not None and challenge.attempts == 5
    assert slow_check["most"] == 1
