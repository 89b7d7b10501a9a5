"""Code generation, keyed hashing and constant-time checks.

Why a keyed HMAC and not a slow password hasher: a 6-digit code has 10^6 values, so no
hashing cost protects a leaked table; the secrecy of ``SECRET_KEY`` does. Online guessing is
stopped by the attempt limit, not by hashing cost.
"""

from __future__ import annotations

import hmac
import secrets

from django.conf import settings
from django.utils.crypto import salted_hmac

from .conf import app_settings

__all__ = [
    "generate_code",
    "generate_public_id",
    "code_key_id",
    "code_key_ids",
    "hash_code",
    "key_id",
    "mask_email",
    "mask_phone",
    "normalize_code",
    "secret_keys",
    "verify_code",
]

KEY_SALT = "otp_auth.crypto.code"
KEY_ID_SALT = "otp_auth.crypto.key-id"
KEY_ID_LENGTH = 16
MAX_INPUT_LENGTH = 64


def secret_keys() -> list[str]:
    """``SECRET_KEY`` then each ``SECRET_KEY_FALLBACKS`` entry: the keys codes verify under."""
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def key_id(secret: str | bytes, *, usage: str) -> str:
    """A short fingerprint naming ``secret`` for ``usage``, stored beside what it keyed.

    An HMAC under the key of a fixed message: it tells which configured key a row needs
    (so rotations can be counted without trying keys on every row) and reveals nothing
    about the key itself.
    """
    digest = salted_hmac(KEY_ID_SALT, usage, secret=secret, algorithm="sha256").hexdigest()
    return digest[:KEY_ID_LENGTH]


def code_key_id() -> str:
    """The key id of the key that ``hash_code`` uses now (``SECRET_KEY``)."""
    return key_id(settings.SECRET_KEY, usage=KEY_SALT)


def code_key_ids() -> list[str]:
    """Key ids of every key that ``verify_code`` tries, the current one first."""
    return [key_id(secret, usage=KEY_SALT) for secret in secret_keys()]


def generate_public_id() -> str:
    """A 256-bit, URL-safe identifier from the OS CSPRNG; never a database sequence."""
    return secrets.token_urlsafe(32)


def generate_code(length: int | None = None, alphabet: str | None = None) -> str:
    """A fresh code from ``secrets``. Leading zeros are kept: codes are strings."""
    length = length or app_settings.CODE_LENGTH
    alphabet = alphabet or app_settings.CODE_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _message(code: str, challenge_id: str, purpose: str) -> str:
    # Binding the id and purpose means a hash copied to another row, or a code issued for
    # password reset, never verifies elsewhere.
    return f"{challenge_id}\x1f{purpose}\x1f{code}"


def hash_code(code: str, *, challenge_id: str, purpose: str, secret: str | None = None) -> str:
    """HMAC-SHA256 of the code, keyed from ``SECRET_KEY`` (or ``secret``), as hex."""
    return salted_hmac(
        KEY_SALT,
        _message(code, challenge_id, purpose),
        secret=secret or settings.SECRET_KEY,
        algorithm="sha256",
    ).hexdigest()


def verify_code(code: str, stored_hash: str, *, challenge_id: str, purpose: str) -> bool:
    """True if ``code`` matches, under ``SECRET_KEY`` or any ``SECRET_KEY_FALLBACKS`` entry.

    Every key is tried, whatever the outcome, with ``hmac.compare_digest``.
    """
    if not stored_hash:
        return False
    matched = False
    for secret in secret_keys():
        candidate = hash_code(code, challenge_id=challenge_id, purpose=purpose, secret=secret)
        matched |= hmac.compare_digest(candidate.encode(), stored_hash.encode())
    return matched


def normalize_code(raw: object, alphabet: str | None = None) -> str | None:
    """The code as typed, without spaces or dashes and upper-cased; ``None`` if malformed.

    Only ASCII characters of ``alphabet`` (by default the configured ``CODE_ALPHABET``;
    a hosted-verify vendor's own for its codes) are accepted (full-width or other Unicode
    digits are refused, not folded), and the length must match exactly.
    """
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        return None
    cleaned = "".join(ch for ch in raw if ch not in " -\t").upper()
    alphabet = alphabet or app_settings.CODE_ALPHABET
    if len(cleaned) != app_settings.CODE_LENGTH:
        return None
    if not all(ch.isascii() and ch in alphabet for ch in cleaned):
        return None
    return cleaned


def mask_phone(e164: str) -> str:
    """``+233241234567`` becomes ``••••4567``."""
    digits = e164[-4:] if len(e164) >= 4 else ""
    return f"\u2022\u2022\u2022\u2022{digits}"


def mask_email(address: str) -> str:
    """``alice@example.com`` becomes ``a••••@example.com``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}\u2022\u2022\u2022\u2022@{domain}"
