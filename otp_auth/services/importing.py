"""Factors brought from another two-factor package (``manage.py otp_auth_import``).

The command reads the other package's rows; this module writes them here through the
same paths as any new factor: the seed encrypted by ``otp_auth.encryption``, the codes
hashed by ``services.recovery``, and the factor rows' own ``post_save`` receivers writing
the audit row (reason ``imported``) and advancing the epoch. Each imported row is
recorded in ``ImportedFactor`` under its source's name and primary key, so a second run
finds it and imports nothing again. Users are not notified: for them nothing changed.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .. import totp as otp
from ..conf import app_settings
from ..constants import PHONE_CHANNELS, Channel
from ..encryption import encrypt_seed, seed_key_id
from ..exceptions import InvalidDestinationError
from ..models import Device, ImportedFactor, TOTPDevice
from ..signals import factor_added
from . import audit, recovery
from .devices import parse_phone_number

__all__ = [
    "REASON",
    "UnreadableFactor",
    "already_imported",
    "check_phone",
    "check_totp",
    "import_phone",
    "import_recovery_codes",
    "import_totp",
    "phone_channels",
]

REASON = "imported"
Kind = ImportedFactor.Kind


class UnreadableFactor(Exception):
    """A source row this package cannot use (an unsupported option, a bad value)."""


def already_imported(source: str, source_id: object) -> bool:
    return ImportedFactor.objects.filter(source=source, source_id=str(source_id)).exists()


def _record(user: Any, source: str, source_id: object, kind: str) -> None:
    """Claim the source row; ``IntegrityError`` if a concurrent run claimed it first."""
    with transaction.atomic():
        ImportedFactor.objects.create(user=user, source=source, source_id=str(source_id), kind=kind)


def _added(user: Any, factor: Device | TOTPDevice) -> None:
    factor_added.send(
        sender=type(factor), user=user, factor=factor, label=factor.label, request=None
    )


def check_totp(seed: bytes, *, digits: int, period: int, algorithm: str = "sha1") -> None:
    """``UnreadableFactor`` unless this package can verify codes of such an app."""
    if not seed or algorithm not in otp.ALGORITHMS:
        raise UnreadableFactor("seed or algorithm")
    if not 6 <= digits <= 10 or not 1 <= period <= 300:
        raise UnreadableFactor("digits or period")


def import_totp(
    user: Any,
    *,
    source: str,
    source_id: object,
    seed: bytes,
    digits: int,
    period: int,
    last_step: int | None,
    name: str = "",
    algorithm: str = "sha1",
) -> TOTPDevice:
    """A confirmed authenticator app with the seed the user's app already holds.

    ``last_step`` is the last time step the source accepted: codes at or before it stay
    refused here, so a code used there cannot be used again here.
    """
    check_totp(seed, digits=digits, period=period, algorithm=algorithm)
    _record(user, source, source_id, Kind.TOTP)
    device = TOTPDevice(
        user=user,
        name=name[:64],
        encrypted_seed=encrypt_seed(seed),
        key_id=seed_key_id(),
        algorithm=algorithm,
        digits=digits,
        period=period,
        confirmed=True,
        last_step=last_step if last_step is not None and last_step >= 0 else None,
    )
    audit.attach(device, reason=REASON)
    device.save()
    _added(user, device)
    return device


def phone_channels(primary: str) -> list[str]:
    """``primary`` first, then the other phone channel; only channels that are enabled."""
    ordered = [primary, *(c for c in (Channel.SMS, Channel.VOICE) if c != primary)]
    return [str(c) for c in ordered if c in PHONE_CHANNELS and c in app_settings.CHANNELS]


def check_phone(number: str, primary: str) -> tuple[str, list[str]]:
    """The E.164 number and channels, or ``UnreadableFactor``."""
    try:
        phone = parse_phone_number(number)
    except InvalidDestinationError as exc:  # malformed, or not allowed here
        raise UnreadableFactor("number") from exc
    channels = phone_channels(primary)
    if not channels:
        raise UnreadableFactor("channel")
    return phone, channels


def import_phone(
    user: Any, *, source: str, source_id: object, number: str, primary: str, name: str = ""
) -> Device | None:
    """A confirmed phone device; ``None`` when the user already has this number
    confirmed here (the source row is still recorded)."""
    phone, channels = check_phone(number, primary)
    _record(user, source, source_id, Kind.PHONE)
    existing = Device.objects.filter(user=user, phone_number=phone, email="").first()
    if existing is not None and existing.confirmed:
        return None
    device = existing or Device(user=user, phone_number=phone)
    device.name = name[:64]
    device.channels = channels
    device.confirmed = True
    audit.attach(device, reason=REASON)
    device.save()
    _added(user, device)
    return device


def import_recovery_codes(user: Any, *, source: str, source_id: object, codes: list[str]) -> int:
    """The user's unused backup codes, as recovery codes (``recovery.import_codes``).
    Returns how many were added; ``UnreadableFactor`` when none could be."""
    if not any(recovery.normalize_imported_code(code) for code in codes):
        raise UnreadableFactor("codes")
    _record(user, source, source_id, Kind.RECOVERY_CODES)
    try:
        return recovery.import_codes(user, codes, reason=REASON)
    except ValueError as exc:
        raise UnreadableFactor("key") from exc
