"""Key rotation loses nothing: recovery codes, seeds and sent codes across a change of
``SECRET_KEY`` or of ``SEED_ENCRYPTION_KEYS``; ``otp_auth_rotate_keys``; the checks
``otp_auth.W031`` and ``otp_auth.W032``."""

from __future__ import annotations

import hmac
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from otp_auth import totp as otp
from otp_auth.checks import check_key_rotation
from otp_auth.constants import Purpose
from otp_auth.crypto import key_id
from otp_auth.encryption import decrypt_seed, encrypt_seed, seed_key_id
from otp_auth.exceptions import InvalidCodeError
from otp_auth.models import RecoveryCodeSet, TOTPDevice
from otp_auth.services import issue_challenge, recovery, verify_challenge
from otp_auth.services import totp as totp_service
from tests.conftest import last_code, otp_settings
from tests.factor_helpers import add_authenticator, code_now

pytestmark = pytest.mark.django_db

OLD = settings.SECRET_KEY
NEW = "a-new-secret-key-for-the-rotation-tests-" + "n" * 30


def rotated(*fallbacks: str) -> Any:
    """``SECRET_KEY`` replaced by ``NEW``, with ``fallbacks`` kept."""
    return override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=list(fallbacks))


def run(*args: str) -> tuple[str, str, int]:
    stdout, stderr = StringIO(), StringIO()
    try:
        call_command("otp_auth_rotate_keys", *args, stdout=stdout, stderr=stderr)
    except SystemExit as exc:
        return stdout.getvalue(), stderr.getvalue(), int(exc.code or 0)
    return stdout.getvalue(), stderr.getvalue(), 0


def warnings() -> list[str]:
    return [m.id for m in check_key_rotation(databases=["default"]) if m.id]


# Key ids.


def test_a_key_id_is_a_short_fingerprint_that_never_contains_the_key():
    kid = key_id(OLD, usage="otp_auth.recovery-code")

    assert len(kid) == 16
    assert kid not in OLD
    assert kid != key_id(NEW, usage="otp_auth.recovery-code")
    assert kid != key_id(OLD, usage="otp_auth.encryption.seed")


# Recovery codes.


def test_recovery_codes_record_the_key_they_are_hashed_under(user):
    recovery.generate_codes(user)

    code_set = RecoveryCodeSet.objects.get(user=user)
    assert code_set.key_id == recovery.recovery_key_id(OLD)
    with rotated(OLD):
        recovery.generate_codes(user)
    code_set.refresh_from_db()
    assert code_set.key_id == recovery.recovery_key_id(NEW)


def test_a_code_under_a_fallback_key_costs_the_same_work_as_one_under_the_current_key(
    user, monkeypatch
):
    codes = recovery.generate_codes(user)
    calls: list[int] = []
    real = hmac.compare_digest
    monkeypatch.setattr(recovery.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))

    with rotated(OLD, "an-unrelated-fallback-" + "u" * 40):
        recovery.use_recovery_code(user, codes[0])
        under_fallback = len(calls)
        calls.clear()
        fresh = recovery.generate_codes(user)
        recovery.use_recovery_code(user, fresh[0])

    # 10 unused codes, each compared under all three keys, whichever key matches.
    assert under_fallback == len(calls) == 10 * 3


def test_a_set_of_unrecorded_key_learns_its_key_id_when_a_code_is_used(user):
    codes = recovery.generate_codes(user)
    RecoveryCodeSet.objects.filter(user=user).update(key_id="")

    with rotated(OLD):
        recovery.use_recovery_code(user, codes[0])

    assert RecoveryCodeSet.objects.get(user=user).key_id == recovery.recovery_key_id(OLD)


def test_w031_warns_while_recovery_codes_need_a_fallback_and_w032_once_it_is_gone(user):
    codes = recovery.generate_codes(user)
    assert warnings() == []

    with rotated(OLD):
        assert warnings() == ["otp_auth.W031"]
        out, _, status = run()
        assert "Recovery-code sets: 1 still under a fallback key" in out
        assert "Keep SECRET_KEY_FALLBACKS" in out
        assert status == 0
    with rotated():
        # The fallback was removed too early: the codes are now stranded, and say so.
        assert warnings() == ["otp_auth.W032"]
        with pytest.raises(InvalidCodeError):
            recovery.use_recovery_code(user, codes[0])


def test_regenerating_moves_a_set_to_the_current_key_and_silences_w031(user):
    recovery.generate_codes(user)

    with rotated(OLD):
        recovery.generate_codes(user)
        assert warnings() == []
        out, _, _ = run()
    assert "No recovery code or pending code needs a fallback key." in out


def test_a_used_up_set_needs_no_key(user):
    with otp_settings(RECOVERY_CODE_COUNT=5):
        codes = recovery.generate_codes(user)
    for code in codes:
        recovery.use_recovery_code(user, code)

    with rotated(OLD):
        assert warnings() == []


def test_sets_of_unrecorded_key_warn_only_while_a_fallback_could_be_theirs(user):
    recovery.generate_codes(user)
    RecoveryCodeSet.objects.filter(user=user).update(key_id="")

    assert warnings() == []  # one key: under it, or already unusable
    with rotated(OLD):
        assert warnings() == ["otp_auth.W031"]


# Authenticator seeds.


def test_seeds_under_derived_keys_stay_readable_after_the_move_to_explicit_keys(user):
    device, seed = add_authenticator(user)
    explicit = Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]):
        assert decrypt_seed(device.encrypted_seed) == seed
        totp_service.verify_totp(user, code_now(seed))


def test_an_accepted_code_re_encrypts_a_seed_read_under_an_older_key(user):
    device, seed = add_authenticator(user)
    explicit = Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]):
        totp_service.verify_totp(user, code_now(seed))
        device.refresh_from_db()
        assert device.key_id == seed_key_id()
    # Under the explicit key alone now: another SECRET_KEY does not matter any more.
    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]), rotated():
        assert decrypt_seed(device.encrypted_seed) == seed


def test_new_seeds_are_encrypted_under_the_first_explicit_key(user):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[first, second]):
        device, seed = add_authenticator(user)
        assert device.key_id == seed_key_id()
    with otp_settings(SEED_ENCRYPTION_KEYS=[first]), rotated():
        assert decrypt_seed(device.encrypted_seed) == seed


def test_the_command_moves_every_seed_from_derived_to_explicit_keys(user, make_user):
    devices = [add_authenticator(user), add_authenticator(make_user("bob"))]
    devices.append(add_authenticator(make_user("carol")))
    explicit = Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]):
        assert warnings() == ["otp_auth.W031"]
        out, err, status = run("--batch-size", "2")
        assert warnings() == []
        again, _, _ = run()

    assert (status, err) == (0, "")
    assert "Seeds: 3 re-encrypted, 0 already under the current key, 0 unreadable." in out
    assert "Seeds: 0 re-encrypted, 3 already under the current key" in again
    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]), rotated():
        for device, seed in devices:
            device.refresh_from_db()
            assert decrypt_seed(device.encrypted_seed) == seed


def test_a_dry_run_counts_and_writes_nothing(user):
    device, _ = add_authenticator(user)
    before = (device.encrypted_seed, device.key_id)

    with otp_settings(SEED_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        out, _, status = run("--dry-run")

    assert "Seeds: 1 would be re-encrypted, 0 already under the current key" in out
    assert status == 0
    device.refresh_from_db()
    assert (device.encrypted_seed, device.key_id) == before


def test_unreadable_seeds_are_reported_by_id_others_still_move_and_w032_fires(user, make_user):
    gone = Fernet.generate_key().decode()
    with otp_settings(SEED_ENCRYPTION_KEYS=[gone]):
        lost, _ = add_authenticator(user)
    kept, seed = add_authenticator(make_user("bob"))
    explicit = Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]):
        assert set(warnings()) == {"otp_auth.W031", "otp_auth.W032"}
        out, err, status = run("--batch-size", "1")
        assert warnings() == ["otp_auth.W032"]

    assert "Seeds: 1 re-encrypted, 0 already under the current key, 1 unreadable." in out
    assert f"Authenticator pk={lost.pk}: no configured key opens its seed." in err
    assert status == 1
    kept.refresh_from_db()
    assert kept.key_id != ""


def test_the_command_never_prints_a_key_seed_token_or_hash(user):
    device, seed = add_authenticator(user)
    codes = recovery.generate_codes(user)
    code_set = RecoveryCodeSet.objects.get(user=user)
    explicit = Fernet.generate_key().decode()

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]), rotated(OLD):
        out, err, _ = run("--verbosity", "3")
        device.refresh_from_db()

    text = out + err
    hashes = [row.code_hash for row in code_set.codes.all()]
    secrets = [explicit, OLD, NEW, otp.b32encode(seed), device.encrypted_seed, *codes, *hashes]
    secrets += [seed_key_id(), code_set.key_id]
    assert not [s for s in secrets if s and s in text]


def test_the_batch_size_is_bounded():
    assert run("--batch-size", "0")[2] == 2


def test_a_seed_moved_by_a_code_check_during_the_run_is_left_alone(user, monkeypatch):
    """Each batch locks its rows and skips those moved since they were listed."""
    from otp_auth.services import keys

    device, seed = add_authenticator(user)
    explicit = Fernet.generate_key().decode()
    real_atomic = keys.transaction.atomic

    class Concurrent:
        @staticmethod
        def atomic(**kwargs: Any) -> Any:
            # A sign-in re-encrypts the seed between the listing and the batch's lock.
            TOTPDevice.objects.filter(pk=device.pk).update(encrypted_seed=moved, key_id=current)
            return real_atomic(**kwargs)

    with otp_settings(SEED_ENCRYPTION_KEYS=[explicit]):
        moved, current = encrypt_seed(seed), seed_key_id()
        monkeypatch.setattr(keys, "transaction", Concurrent)
        out, _, _ = run()

    assert "Seeds: 0 re-encrypted, 0 already under the current key" in out
    device.refresh_from_db()
    assert device.encrypted_seed == moved


# Sent codes.


def test_pending_codes_under_a_fallback_are_counted_and_still_verify(user, outbox):
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)
    code = last_code(outbox)

    with rotated(OLD):
        out, _, _ = run()
        assert "Pending codes: 1 under a fallback key" in out
        verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, user=user)
        out, _, _ = run()
    assert "Pending codes: 0 under a fallback key" in out


# The check itself.


def test_the_check_runs_only_with_a_database_and_quietly_before_migrations(
    user, django_assert_num_queries, monkeypatch
):
    recovery.generate_codes(user)
    with rotated(OLD), django_assert_num_queries(0):
        assert check_key_rotation() == []

    def missing_table(**kwargs: Any) -> Any:
        from django.db import ProgrammingError

        raise ProgrammingError("no such column: key_id")

    from otp_auth.services import keys

    monkeypatch.setattr(keys, "recovery_code_counts", missing_table)
    monkeypatch.setattr(keys, "seed_counts", missing_table)
    with rotated(OLD):
        assert warnings() == []


def test_the_check_costs_one_query_per_table(user, django_assert_num_queries):
    add_authenticator(user)
    recovery.generate_codes(user)

    with django_assert_num_queries(2 + 2 * 2):  # each in a savepoint
        check_key_rotation(databases=["default"])
