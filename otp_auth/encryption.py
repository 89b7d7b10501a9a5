"""Encryption of authenticator seeds at rest (Fernet, from the ``cryptography`` package).

A database dump alone must not reveal seeds, so they are stored as Fernet tokens
(AES-128-CBC + HMAC-SHA256) under keys that live outside the database:

- ``OTP_AUTH["SEED_ENCRYPTION_KEYS"]``: a list of Fernet keys
  (``Fernet.generate_key()``). The first encrypts; all of them decrypt, so a new key is
  put first, ``manage.py otp_auth_rotate_keys`` re-encrypts every seed with it, and the
  old key is then removed.
- Unset (the default): keys derived with HKDF-SHA256 from ``SECRET_KEY`` and each
  ``SECRET_KEY_FALLBACKS`` entry. Rotating ``SECRET_KEY`` then works the same way: keep
  the old key in the fallbacks until the rotation command has run. Whoever holds both
  ``SECRET_KEY`` and the database can read seeds; a separate key avoids that coupling.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .conf import app_settings

__all__ = [
    "SeedDecryptionError",
    "decrypt_seed",
    "encrypt_seed",
    "rotate_seed",
    "uses_derived_keys",
]

HKDF_SALT = b"otp_auth.encryption.seed"
HKDF_INFO = b"fernet-key-v1"


class SeedDecryptionError(Exception):
    """No configured key opens this seed (keys removed too early, or a corrupt row)."""


@lru_cache(maxsize=16)
def _derive(secret: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO)
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


@lru_cache(maxsize=8)
def _multi(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def uses_derived_keys() -> bool:
    """True when no ``SEED_ENCRYPTION_KEYS`` are set and keys come from ``SECRET_KEY``."""
    return app_settings.SEED_ENCRYPTION_KEYS is None


def _fernet() -> MultiFernet:
    configured = app_settings.SEED_ENCRYPTION_KEYS
    if configured is None:
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        return _multi(tuple(_derive(str(secret)) for secret in secrets))
    return _multi(tuple(configured))


def encrypt_seed(seed: bytes) -> str:
    """The seed as an ASCII Fernet token, under the first key."""
    return _fernet().encrypt(seed).decode("ascii")


def decrypt_seed(token: str) -> bytes:
    """The raw seed; ``SeedDecryptionError`` when no key opens it."""
    try:
        return _fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise SeedDecryptionError() from exc


def rotate_seed(token: str) -> str:
    """The same seed re-encrypted under the first key."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise SeedDecryptionError() from exc
