"""Authenticator apps (TOTP): enrollment, verification and removal.

Verification locks the device row (``SELECT ... FOR UPDATE``) for the whole check, so
the same code sent twice at once is accepted once: the first stores its time step in
``last_step`` and the second, which waited for the lock, finds the step used. Refused
codes count toward the user's lockout and the per-address limits exactly like sent
codes (``factors.check_code``). Only the server clock is used; a time sent by the
client is never read.

A seed read under an older key (one still configured to decrypt) is re-encrypted under
the current key when its code is accepted, so seeds in use move to a new key on their
own; ``otp_auth_rotate_keys`` moves the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import segno
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

from .. import totp as otp
from ..conf import app_settings
from ..encryption import SeedDecryptionError, decrypt_seed, encrypt_seed, seed_key_id
from ..exceptions import DeviceError, InvalidCodeError, OTPAuthError
from ..models import AuditEvent, TOTPDevice
from ..signals import factor_verified
from . import audit
from .factors import audit_factor, check_code, factor_added_hook, remove_factor

__all__ = [
    "ENROLL_SESSION_KEY",
    "Provisioning",
    "confirm_device",
    "confirm_enrollment",
    "pending_enrollment",
    "provisioning",
    "remove_totp_device",
    "start_enrollment",
    "verify_totp",
]

logger = logging.getLogger("otp_auth")

ENROLL_SESSION_KEY = "_otp_auth_totp_enroll"
MAX_INPUT_LENGTH = 32


def _now() -> datetime:
    """The one clock seam; only the server's clock counts."""
    return timezone.now()


def normalize_totp(raw: object, digits: int) -> str | None:
    """ASCII digits only, spaces allowed, exactly ``digits`` long; else ``None``."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
        return None
    cleaned = "".join(ch for ch in raw if ch not in " -\t")
    if len(cleaned) != digits or not all("0" <= ch <= "9" for ch in cleaned):
        return None
    return cleaned


def create_device(user: Any, *, name: str = "") -> TOTPDevice:
    """A new, unconfirmed authenticator with a fresh seed; older unconfirmed ones go."""
    algorithm = app_settings.TOTP_ALGORITHM
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(
        user=user,
        name=name[:64],
        encrypted_seed=encrypt_seed(otp.generate_seed(algorithm)),
        key_id=seed_key_id(),
        algorithm=algorithm,
        digits=app_settings.TOTP_DIGITS,
        period=app_settings.TOTP_PERIOD,
    )


def start_enrollment(request: HttpRequest, user: Any) -> TOTPDevice:
    """The unconfirmed authenticator of this enrollment, made on first call.

    Reloading the page shows the same QR code, so an app that already scanned it keeps
    working.
    """
    device = pending_enrollment(request, user)
    if device is None:
        device = create_device(user)
        request.session[ENROLL_SESSION_KEY] = {"device_id": device.pk}
    return device


def pending_enrollment(request: HttpRequest, user: Any) -> TOTPDevice | None:
    raw = request.session.get(ENROLL_SESSION_KEY)
    device_id = raw.get("device_id") if isinstance(raw, dict) else None
    if not isinstance(device_id, int):
        return None
    return TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()


@dataclass(frozen=True)
class Provisioning:
    """What the setup page shows. Never logged, never stored.

    Its ``repr`` shows none of it: Django's template engine logs the whole context at
    DEBUG when a variable lookup fails, and error reports print local variables.
    """

    uri: str = field(repr=False)
    secret: str = field(repr=False)  # Base32, in groups of four for typing
    qr_svg: str = field(repr=False)  # inline <svg>, drawn here: no outside service sees it


def issuer_name(request: HttpRequest | None) -> str:
    configured = app_settings.TOTP_ISSUER or app_settings.SITE_NAME
    if configured:
        return configured
    return request.get_host().split(":")[0] if request is not None else "Django"


def provisioning(device: TOTPDevice, *, account: str, issuer: str) -> Provisioning:
    seed = decrypt_seed(device.encrypted_seed)
    uri = otp.provisioning_uri(
        seed,
        account=account,
        issuer=issuer,
        period=device.period,
        digits=device.digits,
        algorithm=device.algorithm,
    )
    secret = otp.b32encode(seed)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    svg = segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#1d2330")
    return Provisioning(uri=uri, secret=grouped, qr_svg=svg)


def _locked_devices(user: Any, *, confirmed: bool) -> Any:
    qs = TOTPDevice.objects.select_related("user").filter(user_id=user.pk, confirmed=confirmed)
    if connection.features.has_select_for_update_of:
        return qs.select_for_update(of=("self",))
    return qs.select_for_update()


def _check(
    user: Any,
    code: object,
    *,
    device_id: object,
    confirmed: bool,
    request: HttpRequest | None,
) -> TOTPDevice:
    def lock_row() -> TOTPDevice | None:
        qs = _locked_devices(user, confirmed=confirmed)
        if device_id is not None:
            try:
                qs = qs.filter(pk=int(str(device_id)))
            except ValueError:
                return None
        return qs.order_by("-last_used_at", "-created_at").first()  # type: ignore[no-any-return]

    def judge(device: TOTPDevice, now: datetime) -> tuple[OTPAuthError | None, str]:
        error, reason = _judge(device, code, now)
        if error is None:
            device.last_used_at = now
            device.save(update_fields=["last_step", "last_used_at", "encrypted_seed", "key_id"])
        return error, reason

    device = check_code(
        user, factor="totp", now=_now(), request=request, lock_row=lock_row, judge=judge
    )
    audit_factor(AuditEvent.Kind.VERIFIED, device.user, "totp", request=request)
    factor_verified.send(
        sender=TOTPDevice, user=device.user, factor="totp", remaining=None, request=request
    )
    return device


def _judge(device: TOTPDevice, code: object, now: datetime) -> tuple[OTPAuthError | None, str]:
    """Compare ``code`` with the device's window; on success store the step used."""
    normalized = normalize_totp(code, device.digits)
    if normalized is None:
        return InvalidCodeError("malformed"), "malformed"
    try:
        seed = decrypt_seed(device.encrypted_seed)
    except SeedDecryptionError:
        logger.error(
            "otp_auth: cannot decrypt the seed of authenticator pk=%s; check "
            "OTP_AUTH['SEED_ENCRYPTION_KEYS'] and SECRET_KEY_FALLBACKS",
            device.pk,
        )
        return InvalidCodeError("unreadable"), "unreadable"
    match = partial(
        otp.match_step,
        seed,
        normalized,
        now.timestamp(),
        period=device.period,
        digits=device.digits,
        algorithm=device.algorithm,
        tolerance=app_settings.TOTP_TOLERANCE,
    )
    step = match(after=device.last_step)
    if step is not None:
        device.last_step = step
        current = seed_key_id()
        if device.key_id != current:
            device.encrypted_seed, device.key_id = encrypt_seed(seed), current
        return None, ""
    if device.last_step is not None and match() is not None:
        return InvalidCodeError("used"), "used"
    return InvalidCodeError("wrong"), "wrong"


def verify_totp(
    user: Any, code: object, *, device_id: object = None, request: HttpRequest | None = None
) -> TOTPDevice:
    """Accept a code from one of the user's confirmed authenticator apps, once.

    ``device_id`` picks the app (default: the most recently used). Raises
    ``InvalidCodeError`` (one public message for wrong, used, malformed and unknown) and
    ``RateLimitedError`` (or ``AccountLockedError``) while the user's lockout refuses
    codes. Returns the device, with ``device.user`` loaded.
    """
    return _check(user, code, device_id=device_id, confirmed=True, request=request)


def confirm_enrollment(
    request: HttpRequest, user: Any, code: object, *, name: str = ""
) -> TOTPDevice:
    """Activate the pending authenticator once it produced a valid code.

    The code is consumed: it cannot be replayed to log in. Confirming the first factor
    also marks the session verified.
    """
    from .login import gain_second_factor
    from .policy import has_any_factor

    pending = pending_enrollment(request, user)
    if pending is None:
        raise InvalidCodeError("unknown")
    first = not has_any_factor(user)
    device = _check(user, code, device_id=pending.pk, confirmed=False, request=request)
    device.confirmed = True
    device.name = name.strip()[:64] or device.name
    audit.attach(device, request=request)
    device.save(update_fields=["confirmed", "name"])
    request.session.pop(ENROLL_SESSION_KEY, None)
    if first:
        gain_second_factor(request, user, None, factor="totp")
    factor_added_hook(request, user, device)
    return device


def confirm_device(
    user: Any,
    device_id: object,
    code: object,
    *,
    name: str = "",
    request: HttpRequest | None = None,
) -> TOTPDevice:
    """Activate the unconfirmed authenticator ``device_id`` of ``user`` with a code from
    it (the API's enrollment, which has no session). Raises like ``verify_totp``."""
    device = _check(user, code, device_id=device_id, confirmed=False, request=request)
    device.confirmed = True
    device.name = name.strip()[:64] or device.name
    audit.attach(device, request=request)
    device.save(update_fields=["confirmed", "name"])
    factor_added_hook(request, user, device)
    return device


def remove_totp_device(
    user: Any, device_id: object, *, request: HttpRequest | None = None, actor: Any = None
) -> None:
    """Delete one of the user's authenticator apps (``services.factors.remove_factor``).
    Callers apply the factor-change policy first."""
    try:
        pk = int(str(device_id))
    except ValueError as exc:
        raise DeviceError() from exc
    if not 0 < pk < 2**63:
        raise DeviceError()
    device = TOTPDevice.objects.filter(user_id=user.pk, pk=pk).select_related("user").first()
    if device is None:
        raise DeviceError()
    remove_factor(device, request=request, actor=actor)
