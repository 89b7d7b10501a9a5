"""HOTP (RFC 4226) and TOTP (RFC 6238), written against the RFCs with ``hmac``/``hashlib``.

Pure functions without Django: the services add storage, locking and replay protection.
The seed length follows the hash (20, 32 or 64 bytes for SHA-1, SHA-256, SHA-512), which
is also what the RFC 6238 reference code uses for its test vectors.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from urllib.parse import quote, urlencode

__all__ = [
    "ALGORITHMS",
    "b32decode",
    "b32encode",
    "dynamic_truncation",
    "generate_seed",
    "hmac_digest",
    "hotp",
    "match_step",
    "provisioning_uri",
    "time_step",
    "totp",
]

#: Hash name -> seed length in bytes (the hash's output size, RFC 6238 Appendix A).
ALGORITHMS: dict[str, int] = {"sha1": 20, "sha256": 32, "sha512": 64}
MAX_COUNTER = 2**64 - 1


def generate_seed(algorithm: str = "sha1") -> bytes:
    """A new secret from the OS CSPRNG: 160 bits for SHA-1, more for the larger hashes."""
    return secrets.token_bytes(ALGORITHMS[algorithm])


def hmac_digest(key: bytes, counter: int, algorithm: str = "sha1") -> bytes:
    """HMAC of the 8-byte big-endian counter (RFC 4226 §5.3 step 1)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unsupported algorithm {algorithm!r}.")
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError("The counter must fit in 8 bytes.")
    return hmac.new(key, counter.to_bytes(8, "big"), algorithm).digest()


def dynamic_truncation(digest: bytes) -> int:
    """The 31-bit integer picked by the low nibble of the last byte (RFC 4226 §5.3)."""
    offset = digest[-1] & 0x0F
    return int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF


def hotp(key: bytes, counter: int, *, digits: int = 6, algorithm: str = "sha1") -> str:
    """The HOTP value as a zero-padded string of ``digits`` digits."""
    if not 6 <= digits <= 10:
        raise ValueError("HOTP values have 6 to 10 digits.")
    value = dynamic_truncation(hmac_digest(key, counter, algorithm)) % 10**digits
    return f"{value:0{digits}d}"


def time_step(at: float, *, period: int = 30, t0: int = 0) -> int:
    """``T = floor((at - T0) / X)``; a plain int, so dates past 2038 work (RFC 6238 §4)."""
    return int((at - t0) // period)


def totp(
    key: bytes,
    at: float,
    *,
    period: int = 30,
    digits: int = 6,
    algorithm: str = "sha1",
    t0: int = 0,
) -> str:
    """The TOTP value at Unix time ``at``."""
    return hotp(key, time_step(at, period=period, t0=t0), digits=digits, algorithm=algorithm)


def match_step(
    key: bytes,
    code: str,
    at: float,
    *,
    period: int = 30,
    digits: int = 6,
    algorithm: str = "sha1",
    tolerance: int = 1,
    after: int | None = None,
) -> int | None:
    """The time step whose value equals ``code``, within ``tolerance`` steps of ``at``.

    Steps at or below ``after`` (the last accepted step) never match: a code, once
    accepted, is refused again, and so is any code older than it (RFC 6238 §5.2). Every
    candidate is compared with ``hmac.compare_digest``, without stopping at a match.
    """
    current = time_step(at, period=period)
    found: int | None = None
    for step in range(current - tolerance, current + tolerance + 1):
        if step < 0:
            continue
        candidate = hotp(key, step, digits=digits, algorithm=algorithm)
        same = hmac.compare_digest(candidate.encode(), code.encode())
        if same and found is None and (after is None or step > after):
            found = step
    return found


def b32encode(seed: bytes) -> str:
    """Base32 without padding, as authenticator apps expect it."""
    return base64.b32encode(seed).decode("ascii").rstrip("=")


def b32decode(text: str) -> bytes:
    """Inverse of ``b32encode``; tolerates spaces, lower case and missing padding."""
    cleaned = "".join(text.split()).upper().rstrip("=")
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def provisioning_uri(
    seed: bytes,
    *,
    account: str,
    issuer: str,
    period: int = 30,
    digits: int = 6,
    algorithm: str = "sha1",
) -> str:
    """The ``otpauth://totp/`` URI that authenticator apps scan from the QR code.

    The label is ``issuer:account`` and the issuer is repeated as a parameter, as the
    key URI format asks, so apps that read either one show the same name.
    """
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": b32encode(seed),
            "issuer": issuer,
            "algorithm": algorithm.upper(),
            "digits": digits,
            "period": period,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
