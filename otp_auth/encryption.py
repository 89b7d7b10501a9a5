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

The derived keys always decrypt, after the explicit ones: moving from the default to
``SEED_ENCRYPTION_KEYS`` loses no seed, and once the rotation command has re-encrypted
every seed under an explicit key, the derived keys open nothing any more.

Each seed row records the key id (``otp_auth.crypto.key_id``) of the key that encrypted
it, so the rotation command and the system checks count rows still under an older key
without decrypting anything.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .conf import app_settings
from .crypto import key_id, secret_keys

__all__ = [
    "SeedDecryptionError",
    "decrypt_seed",
    "decryption_key_ids",
    "encrypt_seed",
    "rotate_seed",
    "seed_key_id",
    "uses_derived_keys",
]

HKDF_SALT = b"otp_auth.encryption.seed"
HKDF_INFO = b"fernet-key-v1"
KEY_ID_USAGE = "otp_auth.encryption.seed"


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


def _keys() -> tuple[bytes, ...]:
    """The encrypting key first, then every key that decrypts, without repeats."""
    derived = tuple(_derive(str(secret)) for secret in secret_keys())
    configured = app_settings.SEED_ENCRYPTION_KEYS
    keys = derived if configured is None else (*configured, *derived)
    return tuple(dict.fromkeys(keys))


def _fernet() -> MultiFernet:
    return _multi(_keys())


@lru_cache(maxsize=32)
def _key_id(key: bytes) -> str:
    return key_id(key, usage=KEY_ID_USAGE)


def seed_key_id() -> str:
    """The key id of the key ``encrypt_seed`` uses now; stored with each seed."""
    return _key_id(_keys()[0])


def decryption_key_ids() -> list[str]:
    """The key ids of every key ``decrypt_seed`` tries, the encrypting one first."""
    return [_key_id(key) for key in _keys()]


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
