"""Finding the account behind what someone typed: a username, an email address or a
phone number.

The password reset and the sign-in by code both start from such a text and must answer
alike whether or not it names an account, so they share these steps (same queries for a
match and for none).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from ..conf import app_settings
from ..exceptions import InvalidDestinationError, RateLimitedError
from ..models import Device
from . import guard
from .devices import parse_phone_number

__all__ = [
    "as_phone",
    "identifier",
    "limit_subject",
    "matching_users",
    "pick_device",
    "request_reason",
]

MAX_IDENTIFIER_LENGTH = 254


def identifier(raw: object) -> str:
    """The typed text, stripped; ``""`` for anything that is not a short string."""
    if not isinstance(raw, str) or len(raw) > MAX_IDENTIFIER_LENGTH:
        return ""
    return raw.strip()


def as_phone(text: str) -> str | None:
    """``text`` in E.164 when it reads as a phone number, else ``None``."""
    if "@" in text or not any(ch.isdigit() for ch in text):
        return None
    try:
        return parse_phone_number(text)
    except InvalidDestinationError:
        return None


def _email_field(user_model: Any) -> str | None:
    name = str(user_model.get_email_field_name())
    try:
        user_model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return name


def matching_users(
    text: str, phone: str | None, *, limit: int, usable_password: bool = False
) -> list[Any]:
    """Active users whose username is ``text`` exactly, whose email address or confirmed
    email device is ``text`` (any case), or whose confirmed phone is ``phone`` (at most
    ``limit``; with ``usable_password``, only those who have one). One query, whatever
    matches."""
    user_model = get_user_model()
    if not text:
        return []
    query = Q(**{user_model.USERNAME_FIELD: text})
    confirmed = Device.objects.confirmed()
    if "@" in text:
        field = _email_field(user_model)
        if field:
            query |= Q(**{f"{field}__iexact": text})
        query |= Q(pk__in=confirmed.filter(email__iexact=text).values("user_id"))
    if phone:
        query |= Q(pk__in=confirmed.filter(phone_number=phone).values("user_id"))
    found = list(user_model._default_manager.filter(query)[:limit])
    return [
        u
        for u in found
        if getattr(u, "is_active", True) and (not usable_password or u.has_usable_password())
    ]


def pick_device(
    devices: list[Device], text: str, phone: str | None, channel: str
) -> tuple[Device | None, str]:
    """The device and channel for the code: among the account's confirmed devices (most
    recently used first), those serving the asked ``channel`` if one was asked, and of
    those the one whose address was typed, if any. A channel asked for that no device
    serves gets nothing: the user may be avoiding a lost phone."""
    enabled = app_settings.CHANNELS
    options = [
        (device, str(name))
        for device in devices
        for name in device.channels
        if name in enabled and device.serves(name)
    ]
    if channel:
        options = [(device, name) for device, name in options if name == channel]
    typed = [
        (device, name)
        for device, name in options
        if (phone and device.phone_number == phone)
        or (device.email and device.email.lower() == text.lower())
    ]
    pool = typed or options
    return pool[0] if pool else (None, "")


def request_reason(
    limited: RateLimitedError | None,
    user: Any,
    users: list[Any],
    device: Device | None,
    *,
    request: HttpRequest | None,
    purpose: str,
) -> str:
    """The audit reason of a request made from a typed identifier (kept server-side; the
    answer is the same whatever it is); a limit that refused it is reported here."""
    if limited is not None:
        guard.refused(limited, user=user, request=request, purpose=purpose)
        return "rate_limited"
    if user is None:
        return "ambiguous" if users else "no_account"
    return "code" if device is not None else "no_device"


def limit_subject(user: Any, text: str, *, salt: str) -> str:
    """What limits count against: the account, or for no single account the text typed
    (keyed-hashed, case-folded), so that both cost the same."""
    digest = salted_hmac(salt, text.casefold(), algorithm="sha256").hexdigest()[:40]
    return f"user:{user.pk}" if user is not None else f"id:{digest}"
