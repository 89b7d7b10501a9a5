"""Limits under real concurrency (R45, R46, R89): threads against PostgreSQL and Redis,
and two separate processes sharing Redis.

SQLite in memory gives each thread its own empty database and the local-memory cache is
per process, so these prove nothing there; they run with

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CACHE_URL=rediscache://127.0.0.1:6379/1 pytest tests/test_abuse_concurrency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, RequestFactory

from otp_auth.conf import app_settings
from otp_auth.constants import Purpose
from otp_auth.models import AuditEvent, Challenge, Lockout
from otp_auth.providers import locmem
from otp_auth.services import challenges, issue_challenge, limits, verify_challenge
from tests.concurrency import race, require_postgresql
from tests.conftest import last_code, otp_settings, password_step

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
HIGH_SEND_LIMITS = {
    "send_per_user": "1000/h",
    "send_per_destination": "1000/h",
    "send_per_ip": "1000/h",
}


@pytest.fixture(autouse=True)
def _real_services() -> None:
    require_postgresql()
    backend = settings.CACHES[app_settings.CACHE]["BACKEND"]
    if not backend.endswith(".RedisCache"):
        pytest.skip(f"needs Redis shared by threads and processes; CACHE_URL gives {backend}")


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    """Counts the codes actually compared with a challenge (from any thread)."""
    spy = mock.Mock(wraps=challenges._code_matches)
    monkeypatch.setattr(challenges, "_code_matches", spy)
    return spy


def outcomes(results: list[Any]) -> Counter[str]:
    return Counter("ok" if isinstance(r, Challenge) else type(r).__name__ for r in results)


def from_ip(ip: str) -> Any:
    return RequestFactory().post("/", REMOTE_ADDR=ip)


def issue(user: Any) -> tuple[Challenge, str]:
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)
    return challenge, last_code()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# R45 ------------------------------------------------------------------------------------


def test_fifty_parallel_wrong_codes_add_exactly_fifty(user: Any, judged: mock.Mock) -> None:
    with otp_settings(
        MAX_ATTEMPTS=100,
        LOCKOUT_THRESHOLD=0,
        VERIFY_DELAY_MAX=0,
        RATE_LIMITS={"verify_failures_per_ip": "1000/h"},
    ):
        challenge, code = issue(user)
        results = race(
            50,
            lambda _: verify_challenge(
                challenge.public_id, wrong(code), purpose="login", request=from_ip("192.0.2.45")
            ),
        )
        by_ip = limits.current("verify_failures_per_ip", "ip:192.0.2.45")
    assert outcomes(results) == {"InvalidCodeError": 50}
    assert judged.call_count == 50
    assert Lockout.objects.get(user=user).failures == 50
    challenge.refresh_from_db()
    assert challenge.attempts == 50
    assert by_ip == {"1000/h": 50}
    assert AuditEvent.objects.filter(kind="failed", user=user).count() == 50


def test_no_parallel_code_is_judged_past_the_lockout(user: Any, judged: mock.Mock) -> None:
    with otp_settings(MAX_ATTEMPTS=100, VERIFY_DELAY_MAX=0):
        challenge, code = issue(user)
        results = race(
            50, lambda _: verify_challenge(challenge.public_id, wrong(code), purpose="login")
        )
    assert outcomes(results) == {"InvalidCodeError": 10, "AccountLockedError": 40}
    assert judged.call_count == 10
    state = Lockout.objects.get(user=user)
    assert state.failures == 10
    assert state.locked_until is not None
    assert AuditEvent.objects.filter(kind="account_locked").count() == 1


def test_parallel_codes_wait_out_the_growing_delay(
    clock: Any, user: Any, judged: mock.Mock
) -> None:
    # The clock stands still (in every thread), so no wait can run out mid-race.
    with otp_settings(MAX_ATTEMPTS=100):
        challenge, code = issue(user)
        results = race(
            30, lambda _: verify_challenge(challenge.public_id, wrong(code), purpose="login")
        )
    # Five refusals are free; the sixth code would have to wait a second after the fifth.
    assert outcomes(results) == {"InvalidCodeError": 5, "RateLimitedError": 25}
    assert judged.call_count == 5
    assert Lockout.objects.get(user=user).failures == 5


# R46 ------------------------------------------------------------------------------------


def test_parallel_sessions_share_one_budget_of_guesses(user: Any, judged: mock.Mock) -> None:
    """20 browsers pass the password step at once, each gets its own challenge, and each
    guesses three times: together they get the one budget of ten judged codes."""
    clients = [Client() for _ in range(20)]
    # 20 password steps at once would meet the password-step gate, which counts every
    # attempt before judging it (so that parallel guesses cannot slip past): widened here,
    # since this test is about the codes.
    with otp_settings(VERIFY_DELAY_MAX=0, RATE_LIMITS=HIGH_SEND_LIMITS, PASSWORD_DELAY_AFTER=50):
        steps = race(20, lambda i: password_step(clients[i]).status_code)
        assert steps == [302] * 20
        assert Challenge.objects.filter(user=user, status="pending").count() == 20
        locmem.clear()

        def guess(i: int) -> list[int]:
            return [
                clients[i].post("/account/login/verify/", {"code": "000000"}).status_code
                for _ in range(3)
            ]

        race(20, guess)
    assert judged.call_count == 10
    assert Lockout.objects.get(user=user).failures == 10
    assert sum(c.attempts for c in Challenge.objects.filter(user=user)) == 10
    assert AuditEvent.objects.filter(kind="failed").count() == 10
    assert AuditEvent.objects.filter(kind="rate_limited", reason="account_locked").count() == 50


# R89 ------------------------------------------------------------------------------------


def test_twenty_parallel_sends_never_pass_the_destination_cap(
    make_user: Any, outbox: list[Any]
) -> None:
    users = [make_user(f"u{i}") for i in range(20)]  # one phone number for all
    results = race(
        20,
        lambda i: issue_challenge(
            user=users[i], device=users[i].otp_devices.get(), purpose=Purpose.LOGIN
        ),
    )
    assert outcomes(results) == {"ok": 5, "RateLimitedError": 15}
    assert {r.limit for r in results if not isinstance(r, Challenge)} == {"send_per_destination"}
    assert len(outbox) == 5
    assert Challenge.objects.count() == 5
    assert AuditEvent.objects.filter(kind="rate_limited").count() == 15


def test_twenty_parallel_sends_never_pass_the_site_budget(
    make_user: Any, outbox: list[Any]
) -> None:
    users = [make_user(f"u{i}", phone=f"+2332411111{i:02d}") for i in range(20)]
    with otp_settings(RATE_LIMITS={"send_budget": "8/d"}):
        results = race(
            20,
            lambda i: issue_challenge(
                user=users[i], device=users[i].otp_devices.get(), purpose=Purpose.LOGIN
            ),
        )
    assert outcomes(results) == {"ok": 8, "RateLimitedError": 12}
    assert len(outbox) == 8


# Two processes, one Redis -----------------------------------------------------------------


def run_processes(jobs: list[dict[str, Any]]) -> list[dict[str, int]]:
    start_at = time.time() + 3  # both interpreters are up by then
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.abuse_worker", json.dumps({**job, "start_at": start_at})],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_send_limits_hold_across_two_processes(user: Any) -> None:
    job = {
        "mode": "send",
        "database": connection.settings_dict["NAME"],
        "username": user.username,
        "limits": {**HIGH_SEND_LIMITS, "send_per_user": "6/h"},
        "count": 10,
    }
    results = run_processes([job, job])
    assert sum(r["ok"] for r in results) == 6
    assert sum(r["refused"] for r in results) == 14
    assert Challenge.objects.filter(user=user).count() == 6
    assert AuditEvent.objects.filter(kind="rate_limited", reason="send_per_user").count() == 14


def test_counters_hold_across_two_processes() -> None:
    job = {
        "mode": "take",
        "database": connection.settings_dict["NAME"],
        "limits": {"verify_failures_per_ip": "150/h"},
        "limit": "verify_failures_per_ip",
        "subject": "ip:198.51.100.99",
        "count": 100,
    }
    results = run_processes([job, job])
    assert sum(r["ok"] for r in results) == 150
    assert all(r["ok"] > 0 for r in results)
    with otp_settings(RATE_LIMITS={"verify_failures_per_ip": "150/h"}):
        assert limits.current("verify_failures_per_ip", "ip:198.51.100.99") == {"150/h": 150}
