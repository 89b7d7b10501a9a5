"""R34: authenticator codes are compared in constant time, against the whole window.

A timing difference between "first digit wrong" and "last digit wrong", or between a
match early or late in the window, tells an attacker something about the right code. The
defence is structural: every candidate of the window goes through
``hmac.compare_digest``, one call per candidate, whichever matches. These tests watch
those calls on the real verification path, so they fail if a comparison becomes ``==``
(no call), is skipped for some candidates (fewer calls), or stops at the first match.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest

from otp_auth import totp as otp
from otp_auth.exceptions import InvalidCodeError
from otp_auth.services import totp as totp_service
from tests.conftest import otp_settings
from tests.factor_helpers import add_authenticator, code_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[bytes, bytes]]]:
    """Every ``hmac.compare_digest`` call, as ``(candidate, submitted)``."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(otp.hmac, "compare_digest", spy)
    yield calls


def window(seed: bytes, tolerance: int) -> set[bytes]:
    """The codes of every step in the acceptance window around now."""
    current = otp.time_step(time.time())
    steps = range(current - tolerance, current + tolerance + 1)
    return {otp.hotp(seed, step).encode() for step in steps}


@pytest.mark.parametrize("tolerance", [0, 1, 2])
@pytest.mark.parametrize("where", ["earliest", "current", "latest", "wrong"])
def test_every_candidate_of_the_window_is_compared_with_compare_digest(
    user, clock, compared, tolerance, where
):
    _device, seed = add_authenticator(user)
    offset = {"earliest": -tolerance, "current": 0, "latest": tolerance, "wrong": 0}[where]
    code = code_now(seed, offset_steps=offset)
    if where == "wrong":
        code = f"{(int(code) + 1) % 10**6:06d}"
        while code.encode() in window(seed, tolerance):
            code = f"{(int(code) + 1) % 10**6:06d}"

    with otp_settings(TOTP_TOLERANCE=tolerance):
        if where == "wrong":
            with pytest.raises(InvalidCodeError):
                totp_service.verify_totp(user, code)
        else:
            totp_service.verify_totp(user, code)

    # One constant-time comparison per candidate, all of them, even after a match at the
    # first one; each against the submitted code, never a shortened or converted form.
    assert len(compared) == 2 * tolerance + 1
    assert {candidate for candidate, _ in compared} == window(seed, tolerance)
    assert {submitted for _, submitted in compared} == {code.encode()}


def test_a_replayed_code_is_also_judged_by_full_windows_only(user, clock, compared):
    _device, seed = add_authenticator(user)
    code = code_now(seed)
    totp_service.verify_totp(user, code)
    compared.clear()

    with pytest.raises(InvalidCodeError):
        totp_service.verify_totp(user, code)

    # Refused as used: a window for "after the last step", then one to tell "used" from
    # "wrong"; each compares every candidate.
    assert len(compared) == 2 * 3
    assert {candidate for candidate, _ in compared} == window(seed, 1)


def test_match_step_compares_all_candidates_whichever_matches(compared):
    seed = b"k" * 20
    at = 1_700_000_000.0
    step = otp.time_step(at)
    for offset in (-1, 0, 1):
        compared.clear()
        code = otp.hotp(seed, step + offset)

        assert otp.match_step(seed, code, at, tolerance=1) == step + offset
        assert len(compared) == 3
