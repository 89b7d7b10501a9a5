"""Per-user lockout (R40-R46, R49-R51): refused codes in a row count across challenges,
resends, channels, sessions, addresses and interfaces; delays grow, locks follow, and at
``DISABLE_THRESHOLD`` only staff can unlock, with the unlock audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory, override_settings

from otp_auth.backends import OTPBackend
from otp_auth.constants import Purpose
from otp_auth.exceptions import (
    AccountLockedError,
    ChallengeLockedError,
    InvalidCodeError,
    RateLimitedError,
)
from otp_auth.models import AuditEvent, Challenge, Lockout
from otp_auth.providers import locmem
from otp_auth.services import (
    challenges,
    issue_challenge,
    limits,
    lockout,
    resend_challenge,
    verify_challenge,
)
from otp_auth.signals import account_locked, account_unlocked
from tests.conftest import PASSWORD, last_code, login_fully, otp_settings, password_step, wrong_code

pytestmark = pytest.mark.django_db

VERIFY = "/account/login/verify/"
NO_DELAYS = {"VERIFY_DELAY_MAX": 0}


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    """Counts the codes actually compared with a challenge."""
    spy = mock.Mock(wraps=challenges._code_matches)
    monkeypatch.setattr(challenges, "_code_matches", spy)
    return spy


@pytest.fixture
def lock_signals() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def on_locked(sender: Any, **kwargs: Any) -> None:
        calls.append(("locked", kwargs))

    def on_unlocked(sender: Any, **kwargs: Any) -> None:
        calls.append(("unlocked", kwargs))

    account_locked.connect(on_locked)
    account_unlocked.connect(on_unlocked)
    yield calls
    account_locked.disconnect(on_locked)
    account_unlocked.disconnect(on_unlocked)


def issue(user: Any, purpose: str = Purpose.LOGIN, **kwargs: Any) -> tuple[Challenge, str]:
    device = kwargs.pop("device", None) or user.otp_devices.filter(email="").first()
    challenge = issue_challenge(user=user, device=device, purpose=purpose, **kwargs)
    # Voice messages spell the digits out and email goes elsewhere: no code to read.
    return challenge, last_code() if challenge.channel == "sms" else ""


def fail(challenge: Challenge, code: str = "", **kwargs: Any) -> Exception:
    """Submit a wrong code; return what was raised."""
    guess = wrong_code(code) if code else "000000"
    with pytest.raises((InvalidCodeError, ChallengeLockedError, RateLimitedError)) as info:
        verify_challenge(challenge.public_id, guess, purpose=challenge.purpose, **kwargs)
    return info.value


def failures(user: Any) -> int:
    return Lockout.objects.get(user=user).failures


# R41, R42: what counts ---------------------------------------------------------------------


def test_refusals_count_across_challenges_resends_channels_addresses_and_interfaces(
    clock: Any, client: Client, make_user: Any, rf: RequestFactory
) -> None:
    user = make_user(email="alice@mail.example")
    phone = user.otp_devices.get(email="")
    phone.last_used_at = phone.created_at
    phone.save()  # the login goes to the phone
    with otp_settings(**NO_DELAYS):
        # The login form, from one address...
        password_step(client)
        client.post(VERIFY, {"code": wrong_code(last_code())})
        assert failures(user) == 1
        # ... a resend of the same challenge (R42: the count is kept)...
        clock.shift(61)
        client.post("/account/login/resend/")
        assert failures(user) == 1
        client.post(VERIFY, {"code": wrong_code(last_code())})
        # ... the voice channel, for a step-up, from another address...
        challenge, code = issue(user, Purpose.STEP_UP, device=phone, channel="voice")
        fail(challenge, code, request=rf.post("/", REMOTE_ADDR="198.51.100.20"))
        # ... email, in another session...
        mail = user.otp_devices.get(email="alice@mail.example")
        challenge = issue_challenge(user=user, device=mail, purpose=Purpose.LOGIN)
        fail(challenge)
        # ... and the authentication backend.
        challenge, code = issue(user)
        backend = OTPBackend()
        assert backend.authenticate(None, otp_challenge=challenge.public_id, otp_code="0") is None
    assert failures(user) == 5
    assert Challenge.objects.filter(user=user).count() == 4


def test_a_resend_never_resets_either_count(clock: Any, user: Any) -> None:
    challenge, code = issue(user)
    for _ in range(3):
        fail(challenge, code)
    clock.shift(61)
    resend_challenge(challenge.public_id, user=user)
    challenge.refresh_from_db()
    assert (challenge.attempts, failures(user)) == (3, 3)


def test_expired_used_and_unknown_challenges_are_not_counted(clock: Any, user: Any) -> None:
    challenge, code = issue(user)
    verify_challenge(challenge.public_id, code, purpose="login")
    fail(challenge, code)  # used
    other, code = issue(user)
    clock.shift(601)
    fail(other, code)  # expired
    with pytest.raises(InvalidCodeError):
        verify_challenge("nope", "000000", purpose="login")
    assert failures(user) == 0


# R40: per challenge --------------------------------------------------------------------------


def test_a_challenge_locks_at_max_attempts_even_for_the_right_code(user: Any) -> None:
    challenge, code = issue(user)
    errors = [fail(challenge, code) for _ in range(5)]
    assert [type(e).__name__ for e in errors] == ["InvalidCodeError"] * 4 + ["ChallengeLockedError"]
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, code, purpose="login")
    assert failures(user) == 5
    kinds = list(
        AuditEvent.objects.filter(challenge_pk=challenge.pk)
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds[-3:] == ["failed", "challenge_locked", "failed"]


# R43: growing delays ----------------------------------------------------------------------


def test_delays_grow_after_the_free_refusals_and_skip_the_code_check(
    clock: Any, user: Any, judged: mock.Mock
) -> None:
    with otp_settings(MAX_ATTEMPTS=20):
        challenge, code = issue(user)
        for _ in range(5):
            assert isinstance(fail(challenge, code), InvalidCodeError)
        waits = []
        for expected in (1, 2, 4, 8):
            refused = fail(challenge, code)
            assert isinstance(refused, RateLimitedError)
            assert refused.limit == "verify_delay"
            waits.append(refused.retry_after)
            clock.shift(expected - 0.5)
            assert isinstance(fail(challenge, code), RateLimitedError)  # still too soon
            clock.shift(0.5)
            assert isinstance(fail(challenge, code), InvalidCodeError)  # judged, refused
    assert waits == [1, 2, 4, 8]
    assert judged.call_count == 9
    challenge.refresh_from_db()
    assert (challenge.attempts, failures(user)) == (9, 9)
    assert AuditEvent.objects.filter(kind="rate_limited", reason="verify_delay").count() == 8


def test_the_delay_caps_at_verify_delay_max(clock: Any, user: Any) -> None:
    with otp_settings(MAX_ATTEMPTS=100, LOCKOUT_THRESHOLD=0, VERIFY_DELAY_MAX=5):
        challenge, code = issue(user)
        Lockout.objects.filter(user=user).update(failures=30)
        fail(challenge, code)
        refused = fail(challenge, code)
        assert isinstance(refused, RateLimitedError)
        assert refused.retry_after == 5
        assert lockout.delay_after(31) == 5


def test_the_right_code_also_waits_out_the_delay(clock: Any, user: Any) -> None:
    with otp_settings(MAX_ATTEMPTS=20):
        challenge, code = issue(user)
        for _ in range(6):
            fail(challenge, code)
            clock.shift(10)
        fail(challenge, code)  # the 7th: the next code waits 4 s
        with pytest.raises(RateLimitedError):
            verify_challenge(challenge.public_id, code, purpose="login")
        clock.shift(4)
        verify_challenge(challenge.public_id, code, purpose="login")
    assert failures(user) == 0


# Temporary locks and NIST's disable --------------------------------------------------------


def test_ten_refusals_in_a_row_lock_every_challenge_and_stop_sends(
    clock: Any, client: Client, user: Any, judged: mock.Mock, lock_signals: list[Any]
) -> None:
    with otp_settings(**NO_DELAYS):
        first, code = issue(user)
        for _ in range(5):
            fail(first, code)
        second, code = issue(user)
        third, third_code = issue(user)
        for _ in range(4):
            fail(second, code)
        locking = fail(second, code)
        assert isinstance(locking, ChallengeLockedError)  # the 10th is judged, then locks
        refused = fail(third, third_code)
    assert isinstance(refused, AccountLockedError)
    assert refused.retry_after == 900
    assert judged.call_count == 10
    with pytest.raises(AccountLockedError):
        verify_challenge(third.public_id, third_code, purpose="login")
    # No code is sent while locked: the password step says so, and sends nothing.
    locmem.clear()
    response = password_step(client)
    assert response.status_code == 200
    assert "Too many wrong codes. Try again in 15 minutes." in response.content.decode()
    assert locmem.outbox == []
    # The lock is in the audit log and was signalled once.
    (event,) = AuditEvent.objects.filter(kind="account_locked")
    assert (event.user, event.reason, event.challenge_pk) == (
        user,
        "consecutive_failures",
        second.pk,
    )
    assert [name for name, _ in lock_signals] == ["locked"]
    assert lock_signals[0][1]["user"] == user
    assert lock_signals[0][1]["disabled"] is False
    # After the lock, one more refusal is judged (and the next lock lasts twice as long).
    clock.shift(900)
    third, code = issue(user)
    with otp_settings(**NO_DELAYS):
        for _ in range(5):
            fail(third, code)
        fourth, code = issue(user)
        for _ in range(5):
            fail(fourth, code)
    state = Lockout.objects.get(user=user)
    assert state.failures == 20
    assert state.locked_until is not None
    assert abs((state.locked_until - state.last_failure_at).total_seconds() - 1800) < 1


def test_lock_lengths_double_and_stop_at_a_day() -> None:
    with otp_settings(LOCKOUT_THRESHOLD=10, LOCKOUT_DURATION=900):
        assert [lockout.lock_seconds(n) for n in (9, 10, 11, 20, 30, 40, 50, 90)] == [
            0,
            900,
            0,
            1800,
            3600,
            7200,
            14_400,
            86_400,
        ]
    with otp_settings(LOCKOUT_THRESHOLD=0):
        assert lockout.lock_seconds(10) == 0


def test_disable_threshold_disables_codes_until_staff_unlock(
    user: Any, judged: mock.Mock, lock_signals: list[Any]
) -> None:
    with otp_settings(LOCKOUT_THRESHOLD=0, DISABLE_THRESHOLD=12, MAX_ATTEMPTS=100, **NO_DELAYS):
        challenge, code = issue(user)
        for _ in range(12):
            fail(challenge, code)
        refused = fail(challenge, code)
        assert isinstance(refused, AccountLockedError)
        assert (refused.disabled, refused.retry_after) == (True, None)
        assert "contact support" in refused.message
        with pytest.raises(AccountLockedError):
            verify_challenge(challenge.public_id, code, purpose="login")
        with pytest.raises(AccountLockedError):
            issue(user)
    assert judged.call_count == 12
    state = Lockout.objects.get(user=user)
    assert state.disabled_at is not None
    assert state.is_locked(state.disabled_at + timedelta(days=365))
    assert AuditEvent.objects.filter(kind="factor_disabled").count() == 1
    assert lock_signals[0][1]["disabled"] is True

    staff = type(user).objects.create_user("staff", is_staff=True)
    assert lockout.unlock(state, actor=staff, reason="admin")
    assert not lockout.unlock(state, actor=staff)  # nothing left to clear
    verify_challenge(challenge.public_id, code, purpose="login")
    (event,) = AuditEvent.objects.filter(kind="unlocked")
    assert (event.user, event.actor, event.detail) == (user, staff, "failures=12 disabled")
    assert [name for name, _ in lock_signals] == ["locked", "unlocked"]


def test_disable_threshold_is_at_most_one_hundred() -> None:
    from otp_auth.conf import app_settings
    from otp_auth.exceptions import ConfigurationError

    assert app_settings.DISABLE_THRESHOLD == 100
    with otp_settings(DISABLE_THRESHOLD=101), pytest.raises(ConfigurationError):
        app_settings.DISABLE_THRESHOLD  # noqa: B018


# R44: only the user's own success resets only their count --------------------------------


def test_success_resets_only_that_users_count_and_never_the_address_count(
    make_user: Any, rf: RequestFactory
) -> None:
    request = rf.post("/", REMOTE_ADDR="203.0.113.77")
    alice = make_user("alice")
    bob = make_user("bob", phone="+233241111111")
    mine, my_code = issue(alice)
    theirs, their_code = issue(bob)
    for _ in range(3):
        fail(mine, my_code, request=request)
    fail(theirs, their_code, request=request)
    verify_challenge(theirs.public_id, their_code, purpose="login", request=request)
    assert (failures(alice), failures(bob)) == (3, 0)
    # Bob's success from the same address did not wipe the address's refused codes.
    assert limits.current("verify_failures_per_ip", "ip:203.0.113.77") == {"50/h": 4}
    verify_challenge(mine.public_id, my_code, purpose="login", request=request)
    assert failures(alice) == 0
    assert limits.current("verify_failures_per_ip", "ip:203.0.113.77") == {"50/h": 4}


# R45 (functional; the parallel proof is in test_abuse_concurrency) ------------------------


def test_fifty_refused_codes_add_exactly_fifty(user: Any) -> None:
    with otp_settings(MAX_ATTEMPTS=100, LOCKOUT_THRESHOLD=0, **NO_DELAYS):
        challenge, code = issue(user)
        for _ in range(50):
            fail(challenge, code)
    assert failures(user) == 50
    assert AuditEvent.objects.filter(kind="failed", user=user).count() == 50


# R49: not a DRF throttle ------------------------------------------------------------------


def test_the_lockout_holds_through_the_api_with_drf_throttles_off(user: Any) -> None:
    pytest.importorskip("rest_framework")
    from django.conf import settings
    from rest_framework.test import APIClient

    from tests.api.conftest import LOGIN
    from tests.api.conftest import VERIFY as API_VERIFY

    no_throttles = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": [],
        "DEFAULT_THROTTLE_RATES": {"otp_login": None, "otp_verify": None, "otp_send": None},
    }
    api = APIClient()
    answers = []
    with override_settings(REST_FRAMEWORK=no_throttles), otp_settings(**NO_DELAYS):
        for _ in range(3):
            response = api.post(LOGIN, {"username": "alice", "password": PASSWORD})
            challenge = response.json()["challenge"]
            for _ in range(4):
                answers.append(api.post(API_VERIFY, {"challenge": challenge, "code": "000000"}))
    codes = [a.json()["code"] for a in answers]
    assert codes[:10] == ["invalid_code"] * 10
    assert set(codes[10:]) == {"account_locked"}
    assert {a.status_code for a in answers[10:]} == {429}
    assert 0 < int(answers[-1]["Retry-After"]) <= 900
    assert failures(user) == 10


# R50: the password step tells nothing -------------------------------------------------------


def _normalized(response: Any, username: str) -> tuple[int, str]:
    """The page without what legitimately differs: the CSRF token and the echoed name."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return response.status_code, html.replace(f'value="{username}"', 'value="..."')


def test_wrong_passwords_get_the_same_answer_for_locked_unknown_and_normal_accounts(
    make_user: Any, django_assert_max_num_queries: Any
) -> None:
    make_user("normal", phone="+233241111111")
    locked = make_user("locked", phone="+233241111112")
    Lockout.objects.create(user=locked, failures=100, disabled_at=locked.date_joined)
    answers = {}
    for name in ("normal", "locked", "nobody"):
        with django_assert_max_num_queries(1):  # the user lookup, and no lockout read
            answers[name] = _normalized(password_step(Client(), name, "wrong password"), name)
    assert answers["normal"] == answers["locked"] == answers["nobody"]
    assert answers["normal"][0] == 200
    assert locmem.outbox == []


def test_the_right_password_on_a_locked_account_sends_nothing(client: Client, user: Any) -> None:
    Lockout.objects.create(user=user, failures=100, disabled_at=user.date_joined)
    response = password_step(client)
    assert response.status_code == 200
    assert "Sign-in with a one-time code is locked: contact support." in response.content.decode()
    assert locmem.outbox == []
    assert not Challenge.objects.exists()
    assert client.get("/private/").status_code == 302


# R51, R86: staff review and unlock, audited --------------------------------------------------


@pytest.fixture
def admin_client(make_user: Any) -> Client:
    make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    login_fully(client, "root")
    return client


def _lock(user: Any) -> None:
    """Ten refused codes over two challenges, from 192.0.2.99."""
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.99")
    issued = [issue(user), issue(user)]
    with otp_settings(**NO_DELAYS):
        for challenge, code in issued:
            for _ in range(5):
                fail(challenge, code, request=request)


def test_staff_see_who_is_locked_and_why(admin_client: Client, user: Any) -> None:
    _lock(user)
    response = admin_client.get("/admin/otp_auth/lockout/?state=locked")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    state = Lockout.objects.get(user=user)
    page = admin_client.get(f"/admin/otp_auth/lockout/{state.pk}/change/").content.decode()
    assert "Locked" in page
    assert "Second factor locked" in page  # the lock event, from the audit log
    assert "192.0.2.99" in page  # where the refused codes came from
    assert page.count("Code refused") >= 5
    codes = [m.text for m in locmem.outbox]
    assert not any(re.search(r"\b\d{6}\b", c).group(0) in page for c in codes)  # type: ignore[union-attr]


def test_the_unlock_action_is_audited_with_the_admin(
    admin_client: Client, user: Any, lock_signals: list[Any]
) -> None:
    _lock(user)
    state = Lockout.objects.get(user=user)
    response = admin_client.post(
        "/admin/otp_auth/lockout/",
        {"action": "unlock", "_selected_action": [state.pk]},
        follow=True,
    )
    assert "Unlocked 1 user." in response.content.decode()
    state.refresh_from_db()
    assert (state.failures, state.locked_until, state.disabled_at) == (0, None, None)
    (event,) = AuditEvent.objects.filter(kind="unlocked")
    root = type(user).objects.get(username="root")
    assert (event.user, event.actor, event.reason) == (user, root, "admin")
    assert event.ip_address == "127.0.0.1"
    assert lock_signals[-1][0] == "unlocked"
    assert lock_signals[-1][1]["actor"] == root
    other, other_code = issue(user)
    verify_challenge(other.public_id, other_code, purpose="login")


def test_unlocking_needs_the_unlock_permission(make_user: Any, user: Any) -> None:
    _lock(user)
    state = Lockout.objects.get(user=user)
    viewer = make_user("viewer", phone="+233501234568", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lockout"))
    client = Client()
    login_fully(client, "viewer")
    page = client.get("/admin/otp_auth/lockout/")
    assert page.status_code == 200
    assert 'value="unlock"' not in page.content.decode()
    client.post("/admin/otp_auth/lockout/", {"action": "unlock", "_selected_action": [state.pk]})
    assert Lockout.objects.get(user=user).failures == 10
    assert not AuditEvent.objects.filter(kind="unlocked").exists()

    viewer.user_permissions.add(Permission.objects.get(codename="unlock_lockout"))
    client.post("/admin/otp_auth/lockout/", {"action": "unlock", "_selected_action": [state.pk]})
    assert Lockout.objects.get(user=user).failures == 0


def test_staff_cannot_edit_add_or_delete_lockouts(admin_client: Client, user: Any) -> None:
    challenge, code = issue(user)
    fail(challenge, code)
    state = Lockout.objects.get(user=user)
    change = f"/admin/otp_auth/lockout/{state.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert 'name="failures"' not in page
    admin_client.post(change, {"failures": "0"})
    assert admin_client.get("/admin/otp_auth/lockout/add/").status_code == 403
    assert admin_client.post(f"/admin/otp_auth/lockout/{state.pk}/delete/").status_code == 403
    assert Lockout.objects.get(user=user).failures == 1


def test_the_owner_is_emailed_when_repeated_wrong_codes_pause_or_disable_sign_ins(
    user: Any,
) -> None:
    from django.core import mail

    with otp_settings(**NO_DELAYS):
        challenge, code = issue(user)
        for _ in range(5):
            fail(challenge, code)
        assert mail.outbox == []  # refusals below the threshold tell no one
        challenge, code = issue(user)
        for _ in range(5):
            fail(challenge, code)
    (message,) = mail.outbox
    assert message.to == [user.email]
    assert "paused" in message.subject
    assert "knew your password" in message.body
    assert code not in message.body

    mail.outbox.clear()
    state = Lockout.objects.get(user=user)
    lockout.unlock(state)
    with otp_settings(LOCKOUT_THRESHOLD=0, DISABLE_THRESHOLD=3, **NO_DELAYS):
        challenge, code = issue(user)
        for _ in range(3):
            fail(challenge, code)
    (message,) = mail.outbox
    assert "turned off" in message.subject
