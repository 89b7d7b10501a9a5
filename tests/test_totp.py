"""Authenticator apps: RFC 4226/6238 vectors, seeds, encryption at rest, the acceptance
window, replay protection, throttling and enrollment (R3-R6, R10, R30-R33, R62)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from otp_auth import totp as otp
from otp_auth.checks import check_factors
from otp_auth.conf import app_settings
from otp_auth.constants import Purpose
from otp_auth.encryption import SeedDecryptionError, decrypt_seed, encrypt_seed
from otp_auth.exceptions import (
    AccountLockedError,
    ConfigurationError,
    InvalidCodeError,
    RateLimitedError,
)
from otp_auth.models import AuditEvent, Device, Lockout, TOTPDevice
from otp_auth.services import epoch, issue_challenge, verify_challenge
from otp_auth.services import login as login_service
from otp_auth.services import totp as totp_service
from otp_auth.signals import factor_failed
from tests.concurrency import outcome_names, race, require_postgresql
from tests.conftest import otp_settings, password_step, pending_of
from tests.factor_helpers import (
    DEVICES,
    RECOVERY,
    TOTP_ADD,
    VERIFY,
    add_authenticator,
    code_now,
    is_logged_in,
    notifications,
    other_code,
    secret_from_page,
)

RFC4226_SECRET = b"12345678901234567890"
RFC4226 = [
    ("cc93cf18508d94934c64b65d8ba7667fb7cde4b0", 1284755224, "755224"),
    ("75a48a19d4cbe100644e8ac1397eea747a2d33ab", 1094287082, "287082"),
    ("0bacb7fa082fef30782211938bc1c5e70416ff44", 137359152, "359152"),
    ("66c28227d03a2d5529262ff016a1e6ef76557ece", 1726969429, "969429"),
    ("a904c900a64b35909874b33e61c5938a8e15ed1c", 1640338314, "338314"),
    ("a37e783d7b7233c083d4f62926c7a25f238d0316", 868254676, "254676"),
    ("bc9cd28561042c83f219324d3c607256c03272ae", 1918287922, "287922"),
    ("a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", 82162583, "162583"),
    ("1b3c89f65e6c9e883012052823443f048b4332db", 673399871, "399871"),
    ("1637409809a679dc698207310c8c7fc07290d9e5", 645520489, "520489"),
]

# RFC 6238 Appendix B with the seeds of its reference code (Appendix A and errata): the
# seed is as long as the hash's output.
RFC6238_SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


# R4: HOTP, RFC 4226 Appendix D.


@pytest.mark.parametrize("count", range(10))
def test_hotp_matches_rfc4226_appendix_d_including_intermediate_values(count):
    digest_hex, truncated, value = RFC4226[count]

    digest = otp.hmac_digest(RFC4226_SECRET, count)

    assert digest.hex() == digest_hex
    assert otp.dynamic_truncation(digest) == truncated
    assert otp.hotp(RFC4226_SECRET, count) == value


def test_hotp_keeps_leading_zeros_and_refuses_counters_past_eight_bytes():
    assert otp.totp(RFC6238_SEEDS["sha1"], 1111111109, digits=8) == "07081804"
    with pytest.raises(ValueError):
        otp.hmac_digest(RFC4226_SECRET, 2**64)
    with pytest.raises(ValueError):
        otp.hmac_digest(RFC4226_SECRET, -1)


# R5: TOTP, RFC 6238 Appendix B.


@pytest.mark.parametrize("at, sha1, sha256, sha512", RFC6238)
def test_totp_matches_rfc6238_appendix_b_for_each_hash(at, sha1, sha256, sha512):
    for algorithm, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        seed = RFC6238_SEEDS[algorithm]
        assert otp.totp(seed, at, digits=8, algorithm=algorithm) == expected


def test_time_steps_past_2038_are_not_truncated_to_32_bits():
    assert otp.time_step(20000000000) == 0x27BC86AA > 2**32 // 30
    assert otp.time_step(2000000000) == 0x3F940AA


def test_the_20_byte_seed_with_sha256_gives_the_known_wrong_value():
    """The seed-length trap of the RFC's prose: SHA-256 needs the 32-byte seed."""
    wrong = otp.totp(RFC6238_SEEDS["sha1"], 59, digits=8, algorithm="sha256")

    assert wrong == "32247374"
    assert wrong != "46119246"


def test_six_digit_totp_is_the_last_six_digits_of_the_eight_digit_one():
    assert otp.totp(RFC6238_SEEDS["sha1"], 59) == "287082" == otp.hotp(RFC4226_SECRET, 1)


# R3: seeds.


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm, length", [("sha1", 20), ("sha256", 32), ("sha512", 64)])
def test_new_devices_get_a_fresh_seed_as_long_as_the_hash(user, algorithm, length, make_user):
    with otp_settings(TOTP_ALGORITHM=algorithm):
        first = totp_service.create_device(user)
        second = totp_service.create_device(make_user("bob"))

    seeds = {decrypt_seed(first.encrypted_seed), decrypt_seed(second.encrypted_seed)}
    assert len(seeds) == 2
    assert {len(seed) for seed in seeds} == {length}
    assert first.algorithm == algorithm


def test_seed_generation_uses_the_os_csprng(monkeypatch):
    calls = []

    def token_bytes(n: int) -> bytes:
        calls.append(n)
        return b"\x01" * n

    monkeypatch.setattr(otp.secrets, "token_bytes", token_bytes)

    assert otp.generate_seed("sha1") == b"\x01" * 20
    assert calls == [20]


# R6: the otpauth:// URI and the QR code.


def test_provisioning_uri_carries_seed_issuer_account_and_parameters():
    seed = RFC6238_SEEDS["sha256"]

    uri = otp.provisioning_uri(
        seed, account="alice@example.com", issuer="Example Co", digits=8, algorithm="sha256"
    )

    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Example Co:alice@example.com"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
        "issuer": "Example Co",
        "algorithm": "SHA256",
        "digits": "8",
        "period": "30",
    }
    assert otp.b32decode(query["secret"]) == seed


def test_b32_round_trip_tolerates_spaces_case_and_missing_padding():
    seed = RFC6238_SEEDS["sha512"]
    text = otp.b32encode(seed)

    assert "=" not in text
    assert otp.b32decode(" ".join(text.lower()[i : i + 4] for i in range(0, len(text), 4))) == seed


@pytest.mark.django_db
def test_provisioning_draws_the_qr_code_locally_as_inline_svg(user):
    device = totp_service.create_device(user)

    setup = totp_service.provisioning(device, account="alice", issuer="Example")

    assert setup.qr_svg.startswith("<svg")
    assert "http" not in setup.qr_svg.replace("http://www.w3.org/2000/svg", "")
    assert setup.secret.replace(" ", "") not in setup.qr_svg
    assert setup.uri.startswith("otpauth://totp/Example:alice?secret=")


# R10: encryption at rest.


@pytest.mark.django_db
def test_the_database_holds_neither_the_raw_nor_the_base32_seed(user):
    device, seed = add_authenticator(user)

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM otp_auth_totpdevice WHERE id = %s", [device.pk])
        row = " ".join(str(value) for value in cursor.fetchone())

    assert otp.b32encode(seed) not in row
    assert seed.hex() not in row
    assert seed.decode("latin-1") not in row
    # A Fernet token (version byte 0x80), opened only with a key from settings.
    assert device.encrypted_seed.startswith("gAAAA")


@pytest.mark.django_db
def test_a_seed_encrypted_under_another_key_cannot_be_read():
    with otp_settings(SEED_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        token = encrypt_seed(b"s" * 20)

    other_key = [Fernet.generate_key().decode()]
    with otp_settings(SEED_ENCRYPTION_KEYS=other_key), pytest.raises(SeedDecryptionError):
        decrypt_seed(token)


def test_derived_keys_follow_secret_key_rotation_through_the_fallbacks(settings):
    token = encrypt_seed(b"s" * 20)
    old = settings.SECRET_KEY

    with override_settings(SECRET_KEY="a-new-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[old]):
        assert decrypt_seed(token) == b"s" * 20
    with (
        override_settings(SECRET_KEY="a-new-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[]),
        pytest.raises(SeedDecryptionError),
    ):
        decrypt_seed(token)


@pytest.mark.django_db
def test_key_rotation_command_re_encrypts_every_seed_under_the_first_key(user, make_user):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with otp_settings(SEED_ENCRYPTION_KEYS=[old]):
        first, seed = add_authenticator(user)
        second, _ = add_authenticator(make_user("bob"))
    before = first.encrypted_seed

    with otp_settings(SEED_ENCRYPTION_KEYS=[new, old]):
        out = StringIO()
        call_command("otp_auth_rotate_keys", stdout=out)

    assert "Seeds: 2 re-encrypted" in out.getvalue()
    first.refresh_from_db()
    assert first.encrypted_seed != before
    with otp_settings(SEED_ENCRYPTION_KEYS=[new]):
        assert decrypt_seed(first.encrypted_seed) == seed
        second.refresh_from_db()
        assert len(decrypt_seed(second.encrypted_seed)) == 20


@pytest.mark.parametrize(
    "value",
    ["not-a-list", [], ["short"], [b"\xff" * 44], [123]],
)
def test_bad_encryption_keys_are_a_configuration_error(value):
    with otp_settings(SEED_ENCRYPTION_KEYS=value), pytest.raises(ConfigurationError) as info:
        app_settings.SEED_ENCRYPTION_KEYS  # noqa: B018
    assert "SEED_ENCRYPTION_KEYS" in str(info.value)


def test_w030_warns_during_a_secret_key_rotation_with_derived_keys():
    assert check_factors() == []
    with override_settings(SECRET_KEY_FALLBACKS=["an-old-secret-key-" + "o" * 40]):
        assert [m.id for m in check_factors()] == ["otp_auth.W030"]
        with otp_settings(SEED_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
            assert check_factors() == []


def test_bad_encryption_keys_fail_the_system_check():
    with otp_settings(SEED_ENCRYPTION_KEYS=["nope"]):
        assert [m.id for m in check_factors()] == ["otp_auth.E007"]


@pytest.mark.django_db
def test_an_unreadable_seed_is_refused_logged_without_secrets_and_not_counted(user, caplog):
    with otp_settings(SEED_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        device, seed = add_authenticator(user)
    code = code_now(seed)

    with (
        otp_settings(SEED_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        caplog.at_level(logging.DEBUG),
        pytest.raises(InvalidCodeError),
    ):
        totp_service.verify_totp(user, code)

    assert lockout_failures(user) == 0
    assert f"authenticator pk={device.pk}" in caplog.text
    assert code not in caplog.text
    assert otp.b32encode(seed) not in caplog.text


# R30: the acceptance window.


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tolerance, offset, accepted",
    [
        (1, 0, True),
        (1, -1, True),
        (1, 1, True),
        (1, -2, False),
        (1, 2, False),
        (0, 0, True),
        (0, -1, False),
        (0, 1, False),
        (2, -2, True),
    ],
)
def test_codes_are_accepted_within_the_tolerance_only(user, clock, tolerance, offset, accepted):
    _device, seed = add_authenticator(user)

    with otp_settings(TOTP_TOLERANCE=tolerance):
        if accepted:
            totp_service.verify_totp(user, code_now(seed, offset_steps=offset))
        else:
            with pytest.raises(InvalidCodeError):
                totp_service.verify_totp(user, code_now(seed, offset_steps=offset))


def test_the_default_tolerance_is_one_step():
    assert app_settings.TOTP_TOLERANCE == 1
    with otp_settings(TOTP_TOLERANCE=3), pytest.raises(ConfigurationError):
        app_settings.TOTP_TOLERANCE  # noqa: B018


@pytest.mark.django_db
def test_eight_digit_and_sha512_devices_verify_with_their_own_parameters(user, clock):
    with otp_settings(TOTP_DIGITS=8, TOTP_ALGORITHM="sha512", TOTP_PERIOD=60):
        device, seed = add_authenticator(user)

    assert (device.digits, device.algorithm, device.period) == (8, "sha512", 60)
    code = code_now(seed, digits=8, algorithm="sha512", period=60)
    assert totp_service.verify_totp(user, code).pk == device.pk


# R31: replay.


@pytest.mark.django_db
def test_an_accepted_code_is_refused_again_and_so_is_an_older_one(user, clock):
    _device, seed = add_authenticator(user)
    current, previous = code_now(seed), code_now(seed, offset_steps=-1)
    assert current != previous
    totp_service.verify_totp(user, current)

    with pytest.raises(InvalidCodeError) as again:
        totp_service.verify_totp(user, current)
    with pytest.raises(InvalidCodeError) as older:
        totp_service.verify_totp(user, previous)

    assert again.value.reason == "used"
    assert older.value.reason == "used"
    clock.shift(30)
    totp_service.verify_totp(user, code_now(seed))


@pytest.mark.django_db
def test_the_next_step_is_accepted_after_the_current_one(user, clock):
    device, seed = add_authenticator(user)
    totp_service.verify_totp(user, code_now(seed))

    totp_service.verify_totp(user, code_now(seed, offset_steps=1))

    device.refresh_from_db()
    assert device.last_step == otp.time_step(time.time()) + 1


# R33: only the server clock counts.


@pytest.mark.django_db
def test_a_client_supplied_time_is_ignored(client, user, clock):
    user.otp_devices.all().delete()
    _device, seed = add_authenticator(user)
    password_step(client)
    long_ago = 1_000_000_000

    response = client.post(
        VERIFY,
        {"code": otp.totp(seed, long_ago), "time": long_ago, "timestamp": long_ago, "t": long_ago},
    )

    assert response.status_code == 200
    assert not is_logged_in(client)
    client.post(VERIFY, {"code": code_now(seed), "time": long_ago})
    assert is_logged_in(client)


# The same counters as sent codes: the user's lockout and the audit log.


def lockout_failures(user: Any) -> int:
    state = Lockout.objects.filter(user=user).first()
    return state.failures if state else 0


@pytest.mark.django_db
def test_wrong_codes_count_toward_the_lockout_and_delay_even_the_right_code(user, clock):
    device, seed = add_authenticator(user)
    right = code_now(seed)
    for _ in range(app_settings.VERIFY_DELAY_AFTER):
        with pytest.raises(InvalidCodeError):
            totp_service.verify_totp(user, other_code(right))

    with pytest.raises(RateLimitedError) as info:
        totp_service.verify_totp(user, right)

    assert info.value.limit == "verify_delay"
    assert lockout_failures(user) == app_settings.VERIFY_DELAY_AFTER
    device.refresh_from_db()
    assert device.last_step is None  # the right code was not even looked at
    clock.shift(info.value.retry_after)
    totp_service.verify_totp(user, right)
    assert lockout_failures(user) == 0


@pytest.mark.django_db
def test_app_and_sent_codes_share_one_budget(user, clock):
    _device, seed = add_authenticator(user)
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)
    for _ in range(3):
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, "000000", purpose=Purpose.LOGIN, user=user)
    for _ in range(2):
        with pytest.raises(InvalidCodeError):
            totp_service.verify_totp(user, other_code(code_now(seed)))

    assert lockout_failures(user) == 5


@pytest.mark.django_db
def test_a_locked_account_refuses_the_apps_right_code(user, clock):
    from django.utils import timezone

    _device, seed = add_authenticator(user)
    Lockout.objects.create(
        user=user, failures=10, locked_until=timezone.now() + timedelta(minutes=15)
    )

    with pytest.raises(AccountLockedError):
        totp_service.verify_totp(user, code_now(seed))


@pytest.mark.django_db
def test_verifications_are_audited_without_the_code(user, clock):
    _device, seed = add_authenticator(user)
    right = code_now(seed)
    with pytest.raises(InvalidCodeError):
        totp_service.verify_totp(user, other_code(right))
    totp_service.verify_totp(user, right)

    rows = list(
        AuditEvent.objects.filter(user=user, kind__in=["failed", "verified"]).order_by("pk")
    )
    assert [(r.kind, r.reason, r.detail) for r in rows] == [
        ("failed", "wrong", "factor=totp"),
        ("verified", "", "factor=totp"),
    ]
    dump = " ".join(f"{r.reason} {r.detail} {r.destination}" for r in rows)
    assert right not in dump and other_code(right) not in dump


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw", [" 1 2 3", "12345", "1234567", "12345a", "１２３４５６", "1" * 10_000, 123456, None]
)
def test_malformed_codes_are_refused_and_counted(user, raw):
    device, _seed = add_authenticator(user)
    reasons = []

    def on_failed(sender: Any, **kwargs: Any) -> None:
        reasons.append(kwargs["reason"])

    factor_failed.connect(on_failed)
    try:
        with pytest.raises(InvalidCodeError):
            totp_service.verify_totp(user, raw)
    finally:
        factor_failed.disconnect(on_failed)

    assert lockout_failures(user) == 1
    assert reasons == ["malformed"]


@pytest.mark.django_db
def test_spaces_inside_a_code_are_allowed(user, clock):
    _device, seed = add_authenticator(user)
    code = code_now(seed)

    totp_service.verify_totp(user, f"{code[:3]} {code[3:]}")


# R62: enrollment activates only after a valid code.


@pytest.mark.django_db
def test_an_unconfirmed_app_cannot_log_in(client, user, clock):
    user.otp_devices.all().delete()
    device = totp_service.create_device(user)
    seed = decrypt_seed(device.encrypted_seed)

    with pytest.raises(InvalidCodeError) as info:
        totp_service.verify_totp(user, code_now(seed))

    assert info.value.reason == "unknown"
    response = password_step(client)
    assert response["Location"] == "/home/"  # no confirmed factor: password-only login
    assert pending_of(client) is None


@pytest.mark.django_db
def test_enrollment_shows_a_local_qr_code_and_activates_with_a_code_from_the_app(
    client, user, clock, mailoutbox
):
    from tests.conftest import login_fully

    login_fully(client)

    page = client.get(TOTP_ADD)

    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert "<svg" in html and "otpauth://totp/" in html
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    seed = secret_from_page(html)
    assert seed == decrypt_seed(device.encrypted_seed)
    assert client.get(TOTP_ADD).content.decode().count(otp.b32encode(seed)) >= 1  # same QR

    wrong = client.post(TOTP_ADD, {"code": other_code(code_now(seed)), "name": "Aegis"})
    assert wrong.status_code == 200
    assert str(InvalidCodeError.default_message) in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed

    response = client.post(TOTP_ADD, {"code": code_now(seed), "name": "Aegis"})

    assert response.status_code == 302
    assert response["Location"] == RECOVERY
    device.refresh_from_db()
    assert (device.confirmed, device.name) == (True, "Aegis")
    assert len(notifications("sign-in method was added")) == 1
    assert "Aegis" in notifications("sign-in method was added")[0].body
    assert otp.b32encode(seed) not in notifications("sign-in method was added")[0].body


@pytest.mark.django_db
def test_the_enrollment_code_cannot_be_replayed_to_log_in(client, user, clock):
    from tests.conftest import login_fully

    login_fully(client)
    seed = secret_from_page(client.get(TOTP_ADD).content.decode())
    code = code_now(seed)
    client.post(TOTP_ADD, {"code": code})
    TOTPDevice.objects.filter(user=user).update(last_used_at="2999-01-01T00:00:00Z")

    other = type(client)()
    password_step(other)
    other.post(VERIFY, {"code": code})

    assert not is_logged_in(other)


@pytest.mark.django_db
def test_adding_an_app_to_an_account_with_a_factor_needs_a_fresh_step_up(client, user, clock):
    from tests.conftest import login_fully

    login_fully(client)
    clock.shift(app_settings.STEP_UP_MAX_AGE + 1)

    response = client.get(TOTP_ADD)

    assert response.status_code == 302
    assert response["Location"].startswith("/account/step-up/?next=")
    assert not TOTPDevice.objects.exists()


@pytest.mark.django_db
def test_a_user_without_a_factor_can_enroll_an_app_first(client, make_user, clock):
    from tests.factor_helpers import plain_login

    user = make_user(phone=None)
    plain_login(client)
    seed = secret_from_page(client.get(TOTP_ADD).content.decode())

    response = client.post(TOTP_ADD, {"code": code_now(seed)})

    assert response.status_code == 302
    assert login_service.is_session_verified(response.wsgi_request, user)
    assert client.get("/strict/").content == b"strict"


@pytest.mark.django_db
def test_removing_an_app_needs_a_fresh_step_up_and_notifies(client, user, clock, mailoutbox):
    from tests.conftest import login_fully

    device, _seed = add_authenticator(user)
    Device.objects.filter(user=user).update(last_used_at=timezone.now())  # the default
    login_fully(client)
    url = f"/account/authenticator/{device.pk}/remove/"
    clock.shift(app_settings.STEP_UP_MAX_AGE + 1)

    refused = client.post(url)

    assert refused.status_code == 302
    assert refused["Location"] == f"/account/step-up/?next={DEVICES.replace('/', '%2F')}"
    assert TOTPDevice.objects.filter(pk=device.pk).exists()

    session = client.session
    session["_otp_auth_step_up"] = {
        "user": str(user.pk),
        "at": int(time.time()),
        "e": epoch.current(user),
    }
    session.save()
    assert client.post(url).status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert len(notifications("sign-in method was removed")) == 1


@pytest.mark.django_db
def test_another_users_app_cannot_be_removed(client, user, make_user):
    from tests.conftest import login_fully

    device, _seed = add_authenticator(make_user("bob", phone="+233201234567"))
    login_fully(client)

    client.post(f"/account/authenticator/{device.pk}/remove/")

    assert TOTPDevice.objects.filter(pk=device.pk).exists()


@pytest.mark.django_db
def test_the_admin_never_shows_the_seed(client, make_user):
    from tests.conftest import login_fully

    admin = make_user("root", is_staff=True, is_superuser=True)
    device, seed = add_authenticator(admin)
    Device.objects.filter(user=admin).update(last_used_at=timezone.now())  # the default
    login_fully(client, "root")

    page = client.get(f"/admin/otp_auth/totpdevice/{device.pk}/change/").content.decode()

    assert "Phone app" in page
    assert device.encrypted_seed not in page
    assert otp.b32encode(seed) not in page


# R32: one code, many sessions at once (PostgreSQL row locks).


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_code_submitted_concurrently_is_accepted_exactly_once(user, monkeypatch):
    require_postgresql()
    _device, seed = add_authenticator(user)
    real = totp_service._judge
    guard = threading.Lock()
    state = {"inside": 0, "most": 0}

    def slow(*args: Any) -> Any:
        with guard:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        try:
            time.sleep(0.02)
            return real(*args)
        finally:
            with guard:
                state["inside"] -= 1

    monkeypatch.setattr(totp_service, "_judge", slow)
    code = code_now(seed)
    # Replays count as refused codes: stay below the lockout's delay.
    threads = app_settings.VERIFY_DELAY_AFTER
    results = race(threads, lambda _: totp_service.verify_totp(user, code))

    assert outcome_names(results) == {"ok": 1, "InvalidCodeError": threads - 1}
    assert state["most"] == 1
