"""``otp_auth_reset_limits``: a user stopped by send caps, refused passwords or a lockout
signs in again at once, and the reset is audited."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from otp_auth.models import AuditEvent, Lockout
from otp_auth.services import limits
from otp_auth.services.guard import check_password

from .conftest import PASSWORD, otp_settings, password_step

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("otp_auth_reset_limits", *args, stdout=out)
    return out.getvalue()


def test_a_send_capped_user_gets_codes_again(make_user, outbox) -> None:
    make_user()
    with otp_settings(RATE_LIMITS={"send_per_destination": "2/h"}):
        for _ in range(2):
            assert password_step(Client()).status_code == 302
        refused = password_step(Client())
        assert "No more codes can be sent to" in refused.content.decode()
        assert "alice: cleared" in run("--user", "alice")
        assert password_step(Client()).status_code == 302
    assert len(outbox) == 3
    event = AuditEvent.objects.filter(kind="unlocked", reason="limits_reset").get()
    assert event.user.username == "alice"


def test_a_locked_user_is_unlocked_and_it_is_audited(make_user) -> None:
    user = make_user()
    Lockout.objects.create(
        user=user, failures=10, locked_until=timezone.now() + timedelta(minutes=15)
    )
    assert "lockout" in run()  # no --user: every user with a lockout
    state = Lockout.objects.get(user=user)
    assert (state.failures, state.locked_until) == (0, None)
    reasons = set(AuditEvent.objects.filter(kind="unlocked").values_list("reason", flat=True))
    assert reasons == {"limits_reset"}


def test_the_password_wait_and_the_address_counters_are_cleared(make_user, rf) -> None:
    make_user()
    request = rf.post("/account/login/", REMOTE_ADDR="192.0.2.9")
    with otp_settings(PASSWORD_DELAY_AFTER=1, RATE_LIMITS={"password_failures_per_ip": "3/h"}):
        for _ in range(2):
            with contextlib.suppress(limits.RateLimitedError):
                check_password(request, "alice", "wrong")
        assert limits.current("password_failures_per_ip", "ip:192.0.2.9")["3/h"] >= 1
        run("--user", "alice", "--ip", "192.0.2.9")
        assert limits.current("password_failures_per_ip", "ip:192.0.2.9") == {"3/h": 0}
        assert check_password(request, "alice", PASSWORD) is not None


def test_an_unknown_user_is_an_error() -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("--user", "nobody")
