"""Recovery codes: generation, hashed storage, single use (also under concurrency),
regeneration, notification and the page that shows them once (R8, R11, R39, R60)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings

from otp_auth.conf import app_settings
from otp_auth.exceptions import InvalidCodeError, RateLimitedError
from otp_auth.models import AuditEvent, Lockout, RecoveryCode, RecoveryCodeSet
from otp_auth.services import epoch, recovery
from otp_auth.signals import factor_verified, recovery_codes_generated
from tests.concurrency import outcome_names, race, require_postgresql
from tests.conftest import login_fully, otp_settings, password_step, pending_of
from tests.factor_helpers import (
    RECOVERY,
    STEP_UP,
    SWITCH,
    VERIFY,
    is_logged_in,
    notifications,
)

pytestmark = pytest.mark.django_db


def fresh_session(client: Client, user: Any) -> None:
    session = client.session
    session["_otp_auth_step_up"] = {
        "user": str(user.pk),
        "at": int(time.time()),
        "e": epoch.current(user),
    }
    session.save()


# R8: generation.


def test_a_set_has_ten_distinct_codes_of_at_least_64_bits(user):
    codes = recovery.generate_codes(user)

    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [5, 5, 5]
        assert set("".join(groups)) <= set(recovery.ALPHABET)
    bits = 15 * math.log2(len(recovery.ALPHABET))
    assert bits >= 64
    assert not set(recovery.ALPHABET) & set("01ILO")


def test_codes_come_from_the_csprng(user, monkeypatch):
    calls = []
    real = recovery.secrets.choice

    def choice(seq: Any) -> Any:
        calls.append(seq)
        return real(seq)

    monkeypatch.setattr(recovery.secrets, "choice", choice)

    recovery.generate_codes(user)

    assert len(calls) == 10 * 15
    assert set(calls) == {recovery.ALPHABET}


def test_the_count_is_a_setting(user):
    with otp_settings(RECOVERY_CODE_COUNT=12):
        assert len(recovery.generate_codes(user)) == 12


# R11: storage.


def test_codes_are_stored_only_as_salted_hmacs(user):
    codes = recovery.generate_codes(user)
    rows = list(RecoveryCode.objects.filter(code_set__user=user))

    assert len(rows) == 10
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM otp_auth_recoverycode")
        dump = " ".join(" ".join(map(str, row)) for row in cursor.fetchall())
    for code in codes:
        assert code not in dump
        assert code.replace("-", "") not in dump
    assert len({row.salt for row in rows}) == 10
    assert all(len(bytes.fromhex(row.salt)) * 8 >= 32 for row in rows)
    assert all(len(row.code_hash) == 64 for row in rows)


def test_the_same_code_gets_a_different_hash_under_another_salt_or_user():
    first = recovery._hash("ABCDE", salt="00" * 16, user_id=1, secret="k" * 50)
    assert recovery._hash("ABCDE", salt="01" * 16, user_id=1, secret="k" * 50) != first
    assert recovery._hash("ABCDE", salt="00" * 16, user_id=2, secret="k" * 50) != first


def test_comparison_is_constant_time_over_every_unused_code(user, monkeypatch):
    codes = recovery.generate_codes(user)
    compared = []
    real = recovery.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(recovery.hmac, "compare_digest", spy)

    recovery.use_recovery_code(user, codes[0])

    assert len(compared) == 10


# Single use.


def test_a_code_works_once(user):
    codes = recovery.generate_codes(user)

    owner, left = recovery.use_recovery_code(user, codes[3])

    assert (owner, left) == (user, 9)
    with pytest.raises(InvalidCodeError):
        recovery.use_recovery_code(user, codes[3])
    assert recovery.remaining_codes(user) == 9


def test_case_spaces_and_dashes_do_not_matter(user):
    code = recovery.generate_codes(user)[0]

    recovery.use_recovery_code(user, f"  {code.replace('-', ' ').lower()} ")


@pytest.mark.parametrize("raw", ["", "ABCDE-FGHJK", "ABCDE-FGHJK-MNPQ0", "x" * 10_000, 12345, None])
def test_malformed_input_is_refused(user, raw):
    recovery.generate_codes(user)

    with pytest.raises(InvalidCodeError):
        recovery.use_recovery_code(user, raw)


def test_a_user_without_codes_gets_the_same_refusal(user):
    with pytest.raises(InvalidCodeError) as info:
        recovery.use_recovery_code(user, "ABCDE-FGHJK-MNPQR")
    assert info.value.message == str(InvalidCodeError.default_message)


def test_another_users_code_does_not_work(user, make_user):
    bob = make_user("bob", phone="+233201234567")
    bobs = recovery.generate_codes(bob)
    recovery.generate_codes(user)

    with pytest.raises(InvalidCodeError):
        recovery.use_recovery_code(user, bobs[0])


def test_codes_survive_a_secret_key_rotation_with_fallbacks(user, settings):
    code = recovery.generate_codes(user)[0]
    old = settings.SECRET_KEY

    with override_settings(SECRET_KEY="n" * 50, SECRET_KEY_FALLBACKS=[old]):
        recovery.use_recovery_code(user, code)


def test_wrong_codes_count_toward_the_lockout(user, clock):
    codes = recovery.generate_codes(user)
    for _ in range(app_settings.VERIFY_DELAY_AFTER):
        with pytest.raises(InvalidCodeError):
            recovery.use_recovery_code(user, "ABCDE-FGHJK-MNPQR")

    with pytest.raises(RateLimitedError) as info:
        recovery.use_recovery_code(user, codes[0])

    assert Lockout.objects.get(user=user).failures == app_settings.VERIFY_DELAY_AFTER
    assert recovery.remaining_codes(user) == 10
    clock.shift(info.value.retry_after)
    recovery.use_recovery_code(user, codes[0])
    assert Lockout.objects.get(user=user).failures == 0


# Regeneration.


def test_regenerating_replaces_the_whole_set_and_notifies(user, mailoutbox):
    old = recovery.generate_codes(user)
    assert notifications("recovery codes") == []  # a first set is no change to report

    new = recovery.generate_codes(user)

    assert not set(old) & set(new)
    with pytest.raises(InvalidCodeError):
        recovery.use_recovery_code(user, old[0])
    recovery.use_recovery_code(user, new[0])
    sent = notifications("New recovery codes")
    assert len(sent) == 1
    assert sent[0].to == [user.email]
    assert not any(code in sent[0].body for code in new)


def test_generation_is_signalled_without_the_codes(user):
    received = []

    def on_generated(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    recovery_codes_generated.connect(on_generated)
    try:
        recovery.generate_codes(user)
        recovery.generate_codes(user)
    finally:
        recovery_codes_generated.disconnect(on_generated)

    assert [(r["count"], r["replaced"]) for r in received] == [(10, False), (10, True)]
    assert all("codes" not in r for r in received)


# R39: using a code is signalled (for the audit) and notified.


def test_using_a_code_notifies_the_user_and_is_signalled(user, mailoutbox):
    code = recovery.generate_codes(user)[0]
    verified = []

    def on_verified(sender: Any, **kwargs: Any) -> None:
        verified.append((kwargs["factor"], kwargs["remaining"]))

    factor_verified.connect(on_verified)
    try:
        recovery.use_recovery_code(user, code)
    finally:
        factor_verified.disconnect(on_verified)

    assert verified == [("recovery", 9)]
    row = AuditEvent.objects.get(user=user, kind="verified")
    assert row.detail == "factor=recovery remaining=9"
    sent = notifications("recovery code was used")
    assert len(sent) == 1
    assert "9 unused codes are left" in sent[0].body
    assert code not in sent[0].body


def test_notifications_also_reach_confirmed_email_devices(make_user, mailoutbox):
    user = make_user(email="backup@example.org")
    code = recovery.generate_codes(user)[0]

    recovery.use_recovery_code(user, code)

    assert notifications("recovery code was used")[0].to == [
        "alice@example.com",
        "backup@example.org",
    ]


def test_notifications_can_be_switched_off(user, mailoutbox):
    code = recovery.generate_codes(user)[0]

    with otp_settings(NOTIFY_BY_EMAIL=False):
        recovery.use_recovery_code(user, code)

    assert notifications("recovery code") == []


# The login with a recovery code.


def test_a_recovery_code_logs_in_and_the_sent_code_is_cancelled(client, user, outbox):
    code = recovery.generate_codes(user)[0]
    password_step(client)
    assert len(outbox) == 1

    client.post(SWITCH, {"factor": "recovery"})
    page = client.get(VERIFY).content.decode()
    assert "one of the recovery codes you saved" in page
    response = client.post(VERIFY, {"code": code})

    assert response.status_code == 302
    assert is_logged_in(client)
    assert len(outbox) == 1
    assert not user.otp_challenges.filter(status="pending").exists()
    assert recovery.remaining_codes(user) == 9


def test_recovery_codes_are_not_offered_when_none_are_left(client, user):
    codes = recovery.generate_codes(user)
    RecoveryCode.objects.exclude(pk=RecoveryCode.objects.order_by("pk").first().pk).update(
        used_at="2020-01-01T00:00:00Z"
    )
    password_step(client)
    assert "Use a recovery code" in client.get(VERIFY).content.decode()
    client.post(SWITCH, {"factor": "recovery"})
    client.post(VERIFY, {"code": codes[0]})
    client.post("/account/logout/")

    password_step(client)

    assert "Use a recovery code" not in client.get(VERIFY).content.decode()
    client.post(SWITCH, {"factor": "recovery"})
    assert pending_of(client)["factor"] == "code"


# The page: codes shown once, after a fresh second factor (R60, R93).


def test_the_page_needs_a_verified_session(client, user):
    response = client.get(RECOVERY)

    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")


def test_regenerating_needs_a_fresh_step_up(client, user, clock):
    login_fully(client)
    clock.shift(app_settings.STEP_UP_MAX_AGE + 1)

    response = client.post(RECOVERY)

    assert response.status_code == 302
    assert response["Location"] == f"{STEP_UP}?next=%2Faccount%2Frecovery-codes%2F"
    assert not RecoveryCodeSet.objects.exists()


def test_codes_are_shown_once_and_never_cached(client, user):
    login_fully(client)

    response = client.post(RECOVERY)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    codes = response.context["codes"]
    assert len(codes) == 10
    html = response.content.decode()
    assert all(code in html for code in codes)
    again = client.get(RECOVERY).content.decode()
    assert not any(code in again for code in codes)
    assert "You have 10 unused recovery codes." in again


def test_regenerating_from_the_page_after_a_step_up_replaces_the_codes(client, user, clock):
    login_fully(client)
    old = client.post(RECOVERY).context["codes"]
    clock.shift(app_settings.STEP_UP_MAX_AGE + 1)
    fresh_session(client, user)

    new = client.post(RECOVERY).context["codes"]

    assert not set(old) & set(new)
    assert recovery.remaining_codes(user) == 10


# R32-like race: one code, many sessions at once (PostgreSQL row locks).


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_code_used_concurrently_succeeds_exactly_once(user):
    require_postgresql()
    code = recovery.generate_codes(user)[0]
    threads = app_settings.VERIFY_DELAY_AFTER
    results = race(threads, lambda _: recovery.use_recovery_code(user, code))

    assert outcome_names(results) == {"ok": 1, "InvalidCodeError": threads - 1}
    assert recovery.remaining_codes(user) == 9
