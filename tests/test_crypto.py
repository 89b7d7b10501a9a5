"""Code generation, keyed hashing, constant-time comparison and input normalisation."""

from __future__ import annotations

import hmac
import random
import re
import secrets
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings

from otp_auth.conf import ALPHABETS
from otp_auth.crypto import (
    generate_code,
    generate_public_id,
    hash_code,
    mask_email,
    mask_phone,
    normalize_code,
    verify_code,
)
from tests.conftest import otp_settings

CHALLENGE = "challenge-id-1"


def test_ten_thousand_codes_are_six_ascii_digits() -> None:
    codes = [generate_code() for _ in range(10_000)]
    pattern = re.compile(r"^[0-9]{6}$", re.ASCII)
    assert all(pattern.match(code) for code in codes)
    # Leading zeros are kept: about a tenth of the codes start with 0 and still have six
    # characters (the chance that none of 10,000 does is 0.9 ** 10,000).
    assert any(code.startswith("0") for code in codes)
    # A uniform draw over 10^6 values: nearly all distinct.
    assert len(set(codes)) > 9_900


def test_leading_zeros_are_preserved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "choice", lambda alphabet: alphabet[0])
    assert generate_code() == "000000"


def test_configured_length_is_fixed() -> None:
    with otp_settings(CODE_LENGTH=8):
        assert {len(generate_code()) for _ in range(500)} == {8}
    assert len(generate_code(length=10)) == 10


def test_alphanumeric_alphabet() -> None:
    alphabet = ALPHABETS["alphanumeric"]
    with otp_settings(CODE_ALPHABET="alphanumeric"):
        codes = [generate_code() for _ in range(2_000)]
    assert all(len(code) == 6 and set(code) <= set(alphabet) for code in codes)
    used = set("".join(codes))
    # Characters people confuse when reading a code off a phone are never used.
    assert not used & set("01OIL")
    assert used == set(alphabet)


def test_codes_come_from_secrets_not_random(monkeypatch: pytest.MonkeyPatch) -> None:
    random.seed(0)
    first = [generate_code() for _ in range(20)]
    random.seed(0)
    second = [generate_code() for _ in range(20)]
    assert first != second

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the random module must not be used for codes")

    for name in ("choice", "choices", "randint", "randrange", "random", "sample", "getrandbits"):
        monkeypatch.setattr(random, name, forbidden)
    with mock.patch.object(secrets, "choice", wraps=secrets.choice) as choice:
        code = generate_code()
    assert choice.call_count == 6
    assert all(call.args == ("0123456789",) for call in choice.call_args_list)
    assert len(code) == 6


def test_public_ids_have_at_least_128_random_bits() -> None:
    with mock.patch.object(secrets, "token_urlsafe", wraps=secrets.token_urlsafe) as token:
        public_id = generate_public_id()
    (nbytes,) = token.call_args.args
    assert nbytes * 8 >= 128
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", public_id)
    ids = {generate_public_id() for _ in range(2_000)}
    assert len(ids) == 2_000


def test_hash_is_hex_and_not_the_code() -> None:
    digest = hash_code("123456", challenge_id=CHALLENGE, purpose="login")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "123456" not in digest
    assert digest == hash_code("123456", challenge_id=CHALLENGE, purpose="login")


def test_hash_is_bound_to_challenge_and_purpose() -> None:
    digest = hash_code("123456", challenge_id=CHALLENGE, purpose="login")
    assert verify_code("123456", digest, challenge_id=CHALLENGE, purpose="login")
    assert not verify_code("123457", digest, challenge_id=CHALLENGE, purpose="login")
    assert not verify_code("123456", digest, challenge_id="challenge-id-2", purpose="login")
    for purpose in ("step_up", "password_reset", "enrollment"):
        assert not verify_code("123456", digest, challenge_id=CHALLENGE, purpose=purpose)
    # No ambiguity between the fields: moving characters across the separator changes it.
    assert hash_code("3456", challenge_id="ab12", purpose="login") != hash_code(
        "123456", challenge_id="ab", purpose="login"
    )


def test_empty_stored_hash_never_verifies() -> None:
    assert not verify_code("123456", "", challenge_id=CHALLENGE, purpose="login")


def test_rotated_secret_key_still_verifies_until_removed() -> None:
    with override_settings(SECRET_KEY="old-key-" + "x" * 50, SECRET_KEY_FALLBACKS=[]):
        digest = hash_code("654321", challenge_id=CHALLENGE, purpose="login")
    new_key = "new-key-" + "y" * 50
    with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]):
        assert verify_code("654321", digest, challenge_id=CHALLENGE, purpose="login")
        assert not verify_code("654320", digest, challenge_id=CHALLENGE, purpose="login")
    with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[]):
        assert not verify_code("654321", digest, challenge_id=CHALLENGE, purpose="login")


@pytest.mark.parametrize("candidate", ["654321", "000000"])
def test_every_comparison_uses_compare_digest(candidate: str) -> None:
    fallbacks = ["fallback-one-" + "a" * 50, "fallback-two-" + "b" * 50]
    digest = hash_code("654321", challenge_id=CHALLENGE, purpose="login")
    with (
        override_settings(SECRET_KEY_FALLBACKS=fallbacks),
        mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as compare,
    ):
        result = verify_code(candidate, digest, challenge_id=CHALLENGE, purpose="login")
    assert result is (candidate == "654321")
    # One constant-time comparison per key, whether or not an earlier key matched.
    assert compare.call_count == 1 + len(fallbacks)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123456", "123456"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        ("\t012345", "012345"),
        ("12345", None),
        ("1234567", None),
        ("12345a", None),
        ("", None),
        ("      ", None),
        ("\uff11\uff12\uff13\uff14\uff15\uff16", None),  # full-width digits
        ("\u0661\u0662\u0663\u0664\u0665\u0666", None),  # Arabic-Indic digits
        ("\u0967\u0968\u0969\u096a\u096b\u096c", None),  # Devanagari digits
        ("12345\u00b2", None),  # superscript two
        ("1" * 10_240, None),
        (" " * 10_000 + "123456", None),
        (123456, None),
        (None, None),
        (b"123456", None),
        (["123456"], None),
    ],
)
def test_normalize_code(raw: object, expected: str | None) -> None:
    assert normalize_code(raw) == expected


def test_normalize_alphanumeric_is_case_insensitive() -> None:
    with otp_settings(CODE_ALPHABET="alphanumeric"):
        assert normalize_code("ab3-d7k") == "AB3D7K"
        assert normalize_code("AB0D7K") is None  # 0 is not in the alphabet
        assert normalize_code("\uff21B3D7K") is None  # full-width A


def test_mask_phone() -> None:
    assert mask_phone("+233241234567") == "\u2022\u2022\u2022\u20224567"
    assert "2412" not in mask_phone("+233241234567")
    assert mask_phone("12") == "\u2022\u2022\u2022\u2022"


def test_mask_email() -> None:
    assert mask_email("alice@example.com") == "a\u2022\u2022\u2022\u2022@example.com"
    assert "lice" not in mask_email("alice@example.com")
