"""Key rotation: which rows still need an older key, and moving seeds to the current one.

Every row that a key protects records that key's id (a short HMAC fingerprint, never the
key): authenticator seeds (``TOTPDevice.key_id``), recovery-code sets
(``RecoveryCodeSet.key_id``) and sent codes (``Challenge.key_id``). Counting rows by key
id is one grouped query per table, cheap enough for a system check, and tells apart:

- ``current``: under the key in use now;
- ``older``: under a key still configured to verify or decrypt (a fallback), which must
  stay until these rows are gone;
- ``unknown``: written before key ids were recorded;
- ``stranded``: under a key no longer configured: they no longer verify or decrypt.

What can be re-keyed: seeds are re-encrypted under the current key (``rotate_seeds``,
and on each accepted code). Recovery codes and sent codes are keyed hashes: without the
code they cannot be re-hashed, so they are only counted; recovery-code sets leave an old
key when used up or regenerated, sent codes when they expire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from ..constants import ChallengeStatus
from ..crypto import code_key_ids
from ..encryption import (
    SeedDecryptionError,
    decrypt_seed,
    decryption_key_ids,
    rotate_seed,
    seed_key_id,
)
from ..models import Challenge, RecoveryCode, RecoveryCodeSet, TOTPDevice
from .recovery import key_ids as recovery_key_ids

__all__ = [
    "KeyCounts",
    "SeedRotation",
    "pending_code_counts",
    "recovery_code_counts",
    "rotate_seeds",
    "seed_counts",
]

DEFAULT_BATCH_SIZE = 200


@dataclass
class KeyCounts:
    """Rows by the state of the key they need (see the module docstring)."""

    current: int = 0
    older: int = 0
    unknown: int = 0
    stranded: int = 0
    #: Whether an ``unknown`` row may need an older key (more than one key configured).
    unknown_may_need_older: bool = False

    @property
    def at_risk(self) -> int:
        """Rows that removing the older keys now would make unusable."""
        return self.older + (self.unknown if self.unknown_may_need_older else 0)


def _classify(groups: Iterable[tuple[str, int]], configured: list[str]) -> KeyCounts:
    counts = KeyCounts(unknown_may_need_older=len(configured) > 1)
    for kid, number in groups:
        if kid == configured[0]:
            counts.current += number
        elif kid in configured:
            counts.older += number
        elif not kid:
            counts.unknown += number
        else:
            counts.stranded += number
    return counts


def seed_counts(*, using: str = "default") -> KeyCounts:
    """Authenticator seeds (confirmed or not) by the key that encrypted them."""
    rows = TOTPDevice.objects.using(using).order_by().values("key_id").annotate(n=Count("pk"))
    return _classify(((row["key_id"], row["n"]) for row in rows), decryption_key_ids())


def recovery_code_counts(*, using: str = "default") -> KeyCounts:
    """Recovery-code sets with codes left, by the key their codes are hashed under."""
    unused = RecoveryCode.objects.filter(code_set=OuterRef("pk"), used_at__isnull=True)
    rows = (
        RecoveryCodeSet.objects.using(using)
        .filter(Exists(unused))
        .order_by()
        .values("key_id")
        .annotate(n=Count("pk"))
    )
    return _classify(((row["key_id"], row["n"]) for row in rows), recovery_key_ids())


def pending_code_counts(*, using: str = "default") -> KeyCounts:
    """Sent codes that can still be accepted, by the key their hash was made under."""
    rows = (
        Challenge.objects.using(using)
        .filter(status=ChallengeStatus.PENDING, expires_at__gt=timezone.now())
        .exclude(code_hash="")
        .order_by()
        .values("key_id")
        .annotate(n=Count("pk"))
    )
    return _classify(((row["key_id"], row["n"]) for row in rows), code_key_ids())


@dataclass
class SeedRotation:
    """What ``rotate_seeds`` did (or, in a dry run, would do)."""

    rotated: int = 0
    current: int = 0
    unreadable: list[int] = field(default_factory=list)


def rotate_seeds(
    *, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False, using: str = "default"
) -> SeedRotation:
    """Re-encrypt every seed not yet under the current key, ``batch_size`` rows at a time.

    Each batch is one transaction that locks its rows, so a code checked at the same
    moment waits for the batch and reads the new token. Seeds that no configured key
    opens are left as they are and reported by primary key. A dry run decrypts to count
    but writes nothing.
    """
    current = seed_key_id()
    devices = TOTPDevice.objects.using(using)
    result = SeedRotation(current=devices.filter(key_id=current).count())
    pks = list(devices.exclude(key_id=current).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), batch_size):
        batch = pks[start : start + batch_size]
        if dry_run:
            for pk, token in devices.filter(pk__in=batch).values_list("pk", "encrypted_seed"):
                try:
                    decrypt_seed(token)
                except SeedDecryptionError:
                    result.unreadable.append(pk)
                else:
                    result.rotated += 1
            continue
        with transaction.atomic(using=using):
            locked = devices.select_for_update().filter(pk__in=batch).exclude(key_id=current)
            changed = []
            for device in locked.order_by("pk"):
                try:
                    device.encrypted_seed = rotate_seed(device.encrypted_seed)
                except SeedDecryptionError:
                    result.unreadable.append(device.pk)
                    continue
                device.key_id = current
                changed.append(device)
            devices.bulk_update(changed, ["encrypted_seed", "key_id"])
            result.rotated += len(changed)
    result.unreadable.sort()
    return result
