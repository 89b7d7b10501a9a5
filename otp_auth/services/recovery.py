"""Recovery codes: a set of single-use codes the user saves when enrolling.

Each code is 15 characters from a 31-letter alphabet without look-alikes (about 74
bits, above the 64 bits NIST SP 800-63B-4 asks of saved recovery codes), shown once
and stored as HMAC-SHA256 keyed from ``SECRET_KEY``, over a per-code random 128-bit salt,
the user id and the code. A slow password hasher is not used on purpose: at 74 bits a
stolen table cannot be brute-forced even without the key, and checking all ten codes
with PBKDF2 on every attempt would take seconds. Verification locks the user's set row,
so one code used twice at once succeeds once, and refused codes count toward the user's
lockout like any other factor's.

Key rotation: codes verify under ``SECRET_KEY`` and every ``SECRET_KEY_FALLBACKS`` entry,
and each set records the id of the key its codes are hashed under. A hash cannot be
re-keyed without its code, and a code is known only at the moment it is spent, so a set
made under an old key keeps needing that key until it is used up or regenerated: the
rotation command and the system checks count such sets, and the old key stays in the
fallbacks until none is left.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..crypto import key_id, secret_keys
from ..exceptions import InvalidCodeError, OTPAuthError
from ..models import AuditEvent, ImportedFactor, RecoveryCode, RecoveryCodeSet
from ..signals import factor_verified, recovery_codes_generated
from . import epoch, notify
from .factors import audit_factor, check_code

__all__ = [
    "ALPHABET",
    "RecoveryCodes",
    "delete_codes",
    "generate_codes",
    "import_codes",
    "key_ids",
    "normalize_imported_code",
    "normalize_recovery_code",
    "recovery_key_id",
    "remaining_codes",
    "use_recovery_code",
]

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS = 3
GROUP_LENGTH = 5
KEY_SALT = "otp_auth.recovery-code"
MAX_INPUT_LENGTH = 64
IMPORTED_MIN_LENGTH = 6
IMPORTED_MAX_LENGTH = 32


def _now() -> datetime:
    return timezone.now()


def _new_code() -> str:
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def normalize_recovery_code(raw: object) -> str | None:
    """The code without spaces or dashes, upper-cased; ``None`` if it cannot be one."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        return None
    cleaned = "".join(ch for ch in raw if ch not in " -\t").upper()
    if len(cleaned) != GROUPS * GROUP_LENGTH or not all(ch in ALPHABET for ch in cleaned):
        return None
    return cleaned


def normalize_imported_code(raw: object) -> str | None:
    """A backup code brought from another package (``otp_auth_import``), in the form its
    hash is made of: without spaces or dashes, upper-cased, ASCII letters and digits,
    ``IMPORTED_MIN_LENGTH`` to ``IMPORTED_MAX_LENGTH`` long; else ``None``. Accepted at
    sign-in only from users who have imported codes."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        return None
    cleaned = "".join(ch for ch in raw if ch not in " -\t").upper()
    if not IMPORTED_MIN_LENGTH <= len(cleaned) <= IMPORTED_MAX_LENGTH:
        return None
    if not all(ch.isascii() and ch.isalnum() for ch in cleaned):
        return None
    return cleaned


def _hash(code: str, *, salt: str, user_id: object, secret: str) -> str:
    value = f"{user_id}\x1f{salt}\x1f{code}"
    return salted_hmac(KEY_SALT, value, secret=secret, algorithm="sha256").hexdigest()


def recovery_key_id(secret: str) -> str:
    """The key id stored with a set whose codes are hashed under ``secret``."""
    return key_id(secret, usage=KEY_SALT)


def key_ids() -> list[str]:
    """Key ids of ``SECRET_KEY`` then of each fallback: the keys codes verify under."""
    return [recovery_key_id(secret) for secret in secret_keys()]


class RecoveryCodes(list[str]):
    """The codes of a new set, as a list whose ``repr`` does not show them.

    They are shown once, on a page: Django's template engine logs the whole context at
    DEBUG when a variable lookup fails, and error reports print local variables.
    """

    def __repr__(self) -> str:
        return f"<{len(self)} recovery codes>"


def generate_codes(user: Any, *, request: HttpRequest | None = None) -> list[str]:
    """A new set of ``RECOVERY_CODE_COUNT`` codes; any earlier set stops working.

    The codes are returned once, to be shown once; only their hashes are kept.
    Regenerating an existing set notifies the user. Callers require a fresh step-up.
    """
    codes = RecoveryCodes(_new_code() for _ in range(app_settings.RECOVERY_CODE_COUNT))
    now = _now()
    with transaction.atomic():
        code_set, created = RecoveryCodeSet.objects.select_for_update().get_or_create(
            user_id=user.pk, defaults={"created_at": now}
        )
        replaced = not created and code_set.codes.exists()
        code_set.codes.all().delete()
        rows = []
        for code in codes:
            salt = secrets.token_hex(16)
            digest = _hash(
                code.replace("-", ""), salt=salt, user_id=user.pk, secret=settings.SECRET_KEY
            )
            rows.append(RecoveryCode(code_set=code_set, salt=salt, code_hash=digest))
        RecoveryCode.objects.bulk_create(rows)
        code_set.created_at = now
        code_set.last_used_at = None
        code_set.key_id = recovery_key_id(settings.SECRET_KEY)
        code_set.save()
    epoch.advance(user, reason=epoch.Reason.RECOVERY_CODES, request=request)
    audit_factor(
        AuditEvent.Kind.FACTOR_ADDED, user, "recovery_codes", request=request, count=len(codes)
    )
    if replaced:
        notify.notify(user, "recovery_codes_regenerated", request=request, count=len(codes))
    recovery_codes_generated.send(
        sender=RecoveryCodeSet, user=user, count=len(codes), replaced=replaced, request=request
    )
    return codes


def import_codes(user: Any, codes: list[str], *, reason: str = "imported") -> int:
    """Add backup codes the user already holds from another package to their set, hashed
    like every recovery code, so the same codes keep working here. Audited (``reason``)
    and the epoch advanced, as any new factor; the user is not told, nothing changed for
    them. Codes that cannot be one (``normalize_imported_code``) are left out. Returns how
    many were added; ``ValueError`` when the user's set is hashed under another key than
    ``SECRET_KEY`` (regenerate it or finish the key rotation first)."""
    cleaned = list(dict.fromkeys(c for c in map(normalize_imported_code, codes) if c))
    if not cleaned:
        return 0
    current = recovery_key_id(settings.SECRET_KEY)
    with transaction.atomic():
        code_set, created = RecoveryCodeSet.objects.select_for_update().get_or_create(
            user_id=user.pk, defaults={"key_id": current}
        )
        if not created and code_set.key_id not in ("", current) and code_set.codes.exists():
            raise ValueError("recovery codes under an older key")
        rows = []
        for code in cleaned:
            salt = secrets.token_hex(16)
            digest = _hash(code, salt=salt, user_id=user.pk, secret=settings.SECRET_KEY)
            rows.append(RecoveryCode(code_set=code_set, salt=salt, code_hash=digest))
        RecoveryCode.objects.bulk_create(rows)
        if code_set.key_id != current:
            code_set.key_id = current
            code_set.save(update_fields=["key_id"])
    epoch.advance(user, reason=epoch.Reason.RECOVERY_CODES)
    audit_factor(
        AuditEvent.Kind.FACTOR_ADDED,
        user,
        "recovery_codes",
        request=None,
        reason=reason,
        count=len(rows),
    )
    return len(rows)


def _has_imported_codes(user_id: Any) -> bool:
    kind = ImportedFactor.Kind.RECOVERY_CODES
    return ImportedFactor.objects.filter(user_id=user_id, kind=kind).exists()


def delete_codes(user: Any, *, request: HttpRequest | None = None, actor: Any = None) -> bool:
    """Delete the user's recovery codes (the admin's "delete"): audited with ``actor``, the
    epoch advanced, the user told. Callers apply the factor-change policy first. True if
    there was a set."""
    deleted, _kinds = RecoveryCodeSet.objects.filter(user_id=user.pk).delete()
    if not deleted:
        return False
    audit_factor(
        AuditEvent.Kind.FACTOR_REMOVED, user, "recovery_codes", request=request, actor=actor
    )
    epoch.advance(user, reason=epoch.Reason.FACTOR_REMOVED, request=request)
    notify.notify(user, "factor_removed", request=request, factor=str(_("Recovery codes")))
    return True


def remaining_codes(user: Any) -> int:
    return RecoveryCode.objects.filter(code_set__user_id=user.pk, used_at__isnull=True).count()


def _matching_key(row: RecoveryCode, code: str, user_id: object) -> int | None:
    """The index in ``secret_keys()`` of the key ``row`` matches ``code`` under.

    Every key is tried, whatever the outcome, with ``hmac.compare_digest``.
    """
    found: int | None = None
    for index, secret in enumerate(secret_keys()):
        candidate = _hash(code, salt=row.salt, user_id=user_id, secret=secret)
        same = hmac.compare_digest(candidate.encode(), row.code_hash.encode())
        if same and found is None:
            found = index
    return found


def use_recovery_code(
    user: Any, code: object, *, request: HttpRequest | None = None
) -> tuple[Any, int]:
    """Accept one unused recovery code of ``user`` and mark it used.

    Returns ``(user, codes left)``, with the user loaded from the database. Raises
    ``InvalidCodeError`` (one message for wrong, malformed and no codes left) and
    ``RateLimitedError`` while the user's lockout refuses codes. Every use is audited
    and notified.
    """
    normalized = normalize_recovery_code(code)
    left: list[int] = []

    def lock_row() -> RecoveryCodeSet | None:
        qs = RecoveryCodeSet.objects.select_related("user").filter(user_id=user.pk)
        if connection.features.has_select_for_update_of:
            qs = qs.select_for_update(of=("self",))
        else:
            qs = qs.select_for_update()
        code_set = qs.first()
        if code_set is None or not code_set.codes.filter(used_at__isnull=True).exists():
            return None
        return code_set

    def judge(code_set: RecoveryCodeSet, now: datetime) -> tuple[OTPAuthError | None, str]:
        nonlocal normalized
        if normalized is None and _has_imported_codes(user.pk):
            # Backup codes brought from another package keep their own shape.
            normalized = normalize_imported_code(code)
        if normalized is None:
            return InvalidCodeError("malformed"), "malformed"
        unused = list(code_set.codes.filter(used_at__isnull=True))
        hit = matched_key = None
        # Every unused code is hashed and compared under every key, whichever matches.
        for row in unused:
            index = _matching_key(row, normalized, user.pk)
            if index is not None and hit is None:
                hit, matched_key = row, index
        if hit is None or matched_key is None:
            return InvalidCodeError("wrong"), "wrong"
        hit.used_at = now
        hit.save(update_fields=["used_at"])
        code_set.last_used_at = now
        # The match tells which key the whole set is under: a set made before key ids
        # were recorded gets its id here, so rotations can count it from now on.
        code_set.key_id = recovery_key_id(secret_keys()[matched_key])
        code_set.save(update_fields=["last_used_at", "key_id"])
        left.append(len(unused) - 1)
        return None, ""

    code_set = check_code(
        user, factor="recovery", now=_now(), request=request, lock_row=lock_row, judge=judge
    )
    owner, remaining = code_set.user, left[0]
    audit_factor(AuditEvent.Kind.VERIFIED, owner, "recovery", request=request, remaining=remaining)
    notify.notify(owner, "recovery_code_used", request=request, remaining=remaining)
    factor_verified.send(
        sender=RecoveryCodeSet, user=owner, factor="recovery", remaining=remaining, request=request
    )
    return owner, remaining
