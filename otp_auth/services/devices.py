"""Add, confirm and remove a user's devices.

Numbers are parsed with ``phonenumbers`` and stored in E.164; the country allow-list is
checked here, before any message is sent.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..constants import ENROLL_SESSION_KEY, PHONE_CHANNELS, Channel, Purpose
from ..exceptions import DeviceError, InvalidCodeError, InvalidDestinationError
from ..models import Challenge, Device
from . import audit
from .challenges import cancel_challenge, issue_challenge, verify_challenge
from .delivery import refused_number
from .factors import factor_added_hook, remove_factor
from .login import gain_second_factor, mark_verified
from .policy import has_any_factor

__all__ = [
    "add_device",
    "confirm_device",
    "confirm_enrollment",
    "normalize_email",
    "parse_phone_number",
    "pending_enrollment",
    "prepare_device",
    "remove_device",
]


def parse_phone_number(raw: str) -> str:
    """E.164 form of ``raw``; ``InvalidDestinationError`` if invalid or not allowed."""
    try:
        number = phonenumbers.parse(raw, app_settings.DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidDestinationError() from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidDestinationError()
    allowed = app_settings.ALLOWED_COUNTRIES
    region = phonenumbers.region_code_for_number(number)
    if allowed is not None and region not in allowed:
        raise InvalidDestinationError(_("Phone numbers from this country are not supported."))
    if refused_number(number):
        raise InvalidDestinationError(_("Codes cannot be sent to this kind of number."))
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_email(raw: str) -> str:
    """The address with its domain lower-cased; ``InvalidDestinationError`` if malformed."""
    try:
        validate_email(raw)
    except ValidationError as exc:
        raise InvalidDestinationError() from exc
    local, _, domain = raw.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def add_device(
    request: HttpRequest,
    user: Any,
    *,
    channel: str,
    destination: str,
    name: str = "",
) -> tuple[Device, Challenge]:
    """Create (or reuse) an unconfirmed device and send it an enrollment code.

    The device serves ``channel`` and, for a phone, both SMS and voice if enabled.
    """
    device = prepare_device(user, channel=channel, destination=destination, name=name)
    previous = request.session.get(ENROLL_SESSION_KEY)
    if isinstance(previous, dict):
        cancel_challenge(previous.get("challenge_id"), user=user)
    challenge = issue_challenge(
        user=user, device=device, purpose=Purpose.ENROLLMENT, channel=channel, request=request
    )
    request.session[ENROLL_SESSION_KEY] = {
        "challenge_id": challenge.public_id,
        "device_id": device.pk,
    }
    return device, challenge


def prepare_device(user: Any, *, channel: str, destination: str, name: str = "") -> Device:
    """The unconfirmed device for ``destination`` (created or reused); sends nothing.

    Raises ``DeviceError`` for a disabled channel and ``InvalidDestinationError`` for a
    malformed, disallowed or already confirmed destination.
    """
    if channel not in app_settings.CHANNELS:
        raise DeviceError()
    if channel in PHONE_CHANNELS:
        phone, email = parse_phone_number(destination), ""
        channels = [channel] + [
            c for c in (Channel.SMS, Channel.VOICE) if c != channel and c in app_settings.CHANNELS
        ]
    else:
        phone, email = "", normalize_email(destination)
        channels = [Channel.EMAIL.value]
    with transaction.atomic():
        existing = Device.objects.for_user(user).filter(phone_number=phone, email=email).first()
        if existing is not None and existing.confirmed:
            raise InvalidDestinationError(_("This device is already on your account."))
        device = existing or Device(user=user, phone_number=phone, email=email)
        device.name = name[:64]
        device.channels = [str(c) for c in channels]
        device.save()
    return device


def pending_enrollment(request: HttpRequest, user: Any) -> Device | None:
    """The unconfirmed device awaiting its code in this session, if any."""
    raw = request.session.get(ENROLL_SESSION_KEY)
    if not isinstance(raw, dict):
        return None
    device_id = raw.get("device_id")
    if not isinstance(device_id, int):
        return None
    return Device.objects.for_user(user).filter(pk=device_id, confirmed=False).first()


def confirm_device(request: HttpRequest, user: Any, code: object) -> Device:
    """Check the enrollment code and mark the device confirmed.

    Confirming the first device also marks the session verified.
    """
    raw = request.session.get(ENROLL_SESSION_KEY)
    if not isinstance(raw, dict):
        raise InvalidCodeError("unknown")
    first = not has_any_factor(user)
    device, challenge = confirm_enrollment(user, raw.get("challenge_id"), code, request=request)
    request.session.pop(ENROLL_SESSION_KEY, None)
    if first:
        gain_second_factor(request, user, challenge, factor="code")
    else:
        mark_verified(request, user, challenge)
    return device


def confirm_enrollment(
    user: Any, challenge_id: object, code: object, *, request: HttpRequest | None = None
) -> tuple[Device, Challenge]:
    """Check the code of enrollment challenge ``challenge_id`` and confirm its device.

    Session-free (the API passes the challenge id); raises like ``verify_challenge``.
    The user is notified, and remembered browsers are forgotten.
    """
    challenge = verify_challenge(
        challenge_id, code, purpose=Purpose.ENROLLMENT, user=user, request=request
    )
    device = challenge.device
    if device is None:
        raise InvalidCodeError("unknown")
    device.confirmed = True
    device.last_used_at = challenge.consumed_at
    audit.attach(device, request=request)
    device.save(update_fields=["confirmed", "last_used_at"])
    factor_added_hook(request, user, device)
    return device, challenge


def remove_device(
    user: Any, device_id: object, *, request: HttpRequest | None = None, actor: Any = None
) -> None:
    """Delete one of the user's devices (``services.factors.remove_factor``). Callers
    apply the factor-change policy first.

    Removing a confirmed device advances the user's security epoch: every other session,
    token and flow ends (all of them without a ``request`` of the user's own), and the
    user is notified. ``actor`` is the staff member acting, for the audit row.
    """
    try:
        pk = int(str(device_id))
    except ValueError as exc:
        raise DeviceError() from exc
    if not 0 < pk < 2**63:  # past a BIGINT the database raises instead of finding nothing
        raise DeviceError()
    device = Device.objects.for_user(user).filter(pk=pk).select_related("user").first()
    if device is None:
        raise DeviceError()
    remove_factor(device, request=request, actor=actor)
