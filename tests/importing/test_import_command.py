"""``otp_auth_import`` against the real models of django-otp, django-two-factor-auth and
django-allauth's mfa: users keep their authenticator apps, phones and backup codes."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal import auth as allauth_totp
from django.core.management import call_command
from django.test import Client
from django_otp.oath import TOTP as OathTOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice as OtpTOTPDevice
from two_factor.plugins.phonenumber.models import PhoneDevice

from otp_auth.models import AuditEvent, Device, ImportedFactor, RecoveryCode, TOTPDevice
from otp_auth.services import epoch, importing
from tests.conftest import password_step
from tests.factor_helpers import SWITCH, VERIFY, is_logged_in

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("otp_auth_import", *args, stdout=out)
    return out.getvalue()


def line(output: str, kind: str) -> str:
    return next(row for row in output.splitlines() if row.startswith(f"{kind}:"))


def two_factor_user(make_user: Any, name: str = "alice") -> tuple[Any, OtpTOTPDevice, list[str]]:
    """A django-two-factor-auth user: an authenticator app and five backup tokens."""
    user = make_user(name, phone=None)
    app = OtpTOTPDevice.objects.create(user=user, name="default", confirmed=True)
    backup = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    tokens = [StaticToken.random_token() for _ in range(5)]
    for token in tokens:
        backup.token_set.create(token=token)
    return user, app, tokens


def app_code(device: OtpTOTPDevice) -> str:
    """The code the user's app shows now, computed by django-otp itself from its seed."""
    oath = OathTOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    oath.time = time.time()
    return f"{oath.token():0{device.digits}d}"


def sign_in_with(client: Client, username: str, code: str, *, factor: str | None = None) -> bool:
    password_step(client, username)
    if factor:
        client.post(SWITCH, {"factor": factor})
    client.post(VERIFY, {"code": code})
    return is_logged_in(client)


def test_a_two_factor_user_signs_in_with_the_same_app_and_backup_tokens(make_user, clock):
    user, app, tokens = two_factor_user(make_user)

    output = run("--source", "two_factor")

    assert line(output, "totp") == ("totp: imported 1, already imported 0, skipped 0, unreadable 0")
    assert line(output, "recovery_codes").startswith("recovery_codes: imported 1,")
    assert sign_in_with(Client(), "alice", app_code(app))
    assert sign_in_with(Client(), "alice", tokens[0], factor="recovery")
    # A backup token works once.
    assert not sign_in_with(Client(), "alice", tokens[0], factor="recovery")
    assert sign_in_with(Client(), "alice", tokens[1].upper(), factor="recovery")
    assert RecoveryCode.objects.filter(code_set__user=user, used_at__isnull=True).count() == 3


def test_a_code_accepted_before_the_import_is_not_accepted_again(make_user, clock):
    _user, app, _tokens = two_factor_user(make_user)
    code = app_code(app)
    assert app.verify_token(code)  # signed in with it through django-otp

    run()

    assert TOTPDevice.objects.get().last_step == app.last_t
    assert not sign_in_with(Client(), "alice", code)


def allauth_user(make_user: Any, name: str = "bob") -> tuple[Any, str, list[str]]:
    user = make_user(name, phone=None)
    secret = allauth_totp.generate_totp_secret()
    allauth_totp.TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user).generate_codes()
    return user, secret, codes


def allauth_code(secret: str) -> str:
    counter = int(time.time()) // 30
    return allauth_totp.format_hotp_value(allauth_totp.hotp_value(secret, counter))


def test_an_allauth_user_signs_in_with_the_same_app_and_unused_recovery_codes(make_user, clock):
    user, secret, codes = allauth_user(make_user)
    stored = Authenticator.objects.get(type="totp").data["secret"]
    assert secret not in stored  # sealed by the site's MFA adapter
    recovery_row = Authenticator.objects.get(type="recovery_codes")
    assert RecoveryCodes(recovery_row).validate_code(codes[0])  # used before the move

    output = run("--source", "allauth")

    assert line(output, "totp").startswith("totp: imported 1,")
    assert line(output, "recovery_codes").startswith("recovery_codes: imported 1,")
    assert RecoveryCode.objects.filter(code_set__user=user).count() == len(codes) - 1
    assert not sign_in_with(Client(), "bob", codes[0], factor="recovery")
    assert sign_in_with(Client(), "bob", allauth_code(secret))
    assert sign_in_with(Client(), "bob", codes[1], factor="recovery")
    assert not sign_in_with(Client(), "bob", codes[1], factor="recovery")


def test_an_allauth_code_used_before_the_import_is_refused(make_user, clock):
    _user, secret, _codes = allauth_user(make_user)
    code = allauth_code(secret)
    authenticator = Authenticator.objects.get(type="totp")
    assert authenticator.wrap().validate_code(code)
    authenticator.record_usage()

    run()

    assert not sign_in_with(Client(), "bob", code)


def test_running_again_imports_nothing_new(make_user, clock):
    two_factor_user(make_user)
    allauth_user(make_user)
    run()
    counts = (TOTPDevice.objects.count(), RecoveryCode.objects.count(), AuditEvent.objects.count())

    output = run()

    assert line(output, "totp") == "totp: imported 0, already imported 2, skipped 0, unreadable 0"
    assert line(output, "recovery_codes").startswith(
        "recovery_codes: imported 0, already imported 2,"
    )
    after = (TOTPDevice.objects.count(), RecoveryCode.objects.count(), AuditEvent.objects.count())
    assert after == counts


def test_a_row_claimed_by_a_concurrent_run_is_not_imported_twice(make_user, clock, monkeypatch):
    user, app, _tokens = two_factor_user(make_user)
    # Another run claimed the row between this run's read and its write.
    monkeypatch.setattr(importing, "already_imported", lambda source, source_id: False)
    ImportedFactor.objects.create(
        user=user, source="django_otp.totp", source_id=str(app.pk), kind="totp"
    )

    output = run()

    assert line(output, "totp").startswith("totp: imported 0, already imported 1,")
    assert not TOTPDevice.objects.exists()


def test_a_dry_run_counts_and_writes_nothing(make_user, clock):
    two_factor_user(make_user)
    before = epoch.current(1)

    output = run("--dry-run")

    assert line(output, "totp").startswith("totp: would import 1,")
    assert "nothing was written" in output
    assert not TOTPDevice.objects.exists()
    assert not RecoveryCode.objects.exists()
    assert not ImportedFactor.objects.exists()
    assert not AuditEvent.objects.exists()
    assert epoch.current(1) == before


def test_each_imported_factor_is_audited_once_and_advances_the_epoch(make_user, clock):
    user, _app, _tokens = two_factor_user(make_user)
    PhoneDevice.objects.create(
        user=user, name="default", number="+233241234567", method="sms", confirmed=True
    )
    before = epoch.current(user)

    run()

    rows = AuditEvent.objects.filter(user=user, kind=AuditEvent.Kind.FACTOR_ADDED)
    assert sorted(r.detail.split()[0] if r.detail else r.channel for r in rows) == [
        "factor=recovery_codes",
        "factor=totp",
        "sms",
    ]
    assert {r.reason for r in rows} == {"imported"}
    assert epoch.current(user) > before


def test_phone_devices_keep_their_number_and_method(make_user, clock):
    user = make_user("carol", phone=None)
    PhoneDevice.objects.create(
        user=user, name="default", number="+233 24 123 4567", method="call", confirmed=True
    )
    PhoneDevice.objects.create(
        user=user, name="draft", number="+233241234568", method="sms", confirmed=False
    )

    output = run("--source", "two_factor")

    device = Device.objects.get(user=user)
    assert (device.phone_number, device.channels, device.confirmed) == (
        "+233241234567",
        ["voice", "sms"],
        True,
    )
    assert line(output, "phone") == "phone: imported 1, already imported 0, skipped 1, unreadable 0"


def test_unreadable_rows_are_counted_and_the_rest_imported(make_user, clock):
    user, _app, _tokens = two_factor_user(make_user)
    OtpTOTPDevice.objects.create(user=user, name="odd", confirmed=True, t0=1000)

    output = run()

    assert line(output, "totp") == "totp: imported 1, already imported 0, skipped 0, unreadable 1"
    assert "t0 is not 0" in output
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_only_the_named_user_is_imported(make_user, clock):
    two_factor_user(make_user, "alice")
    two_factor_user(make_user, "dave")

    run("--user", "dave")

    assert list(TOTPDevice.objects.values_list("user__username", flat=True)) == ["dave"]


def test_a_failure_rolls_back_every_factor_of_that_user(make_user, clock, monkeypatch):
    two_factor_user(make_user)

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(importing, "import_recovery_codes", broken)
    with pytest.raises(RuntimeError):
        run()

    assert not TOTPDevice.objects.exists()
    assert not ImportedFactor.objects.exists()


def test_the_output_shows_no_seed_and_no_code(make_user, clock):
    _user, app, tokens = two_factor_user(make_user)
    _bob, secret, codes = allauth_user(make_user)

    output = run() + run("--dry-run")

    for secret_text in [app.key, secret, *tokens, *codes]:
        assert secret_text.lower() not in output.lower()
