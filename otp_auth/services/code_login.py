"""Sign-in by a one-time code (``CODE_LOGIN``): a username, email address or phone number
instead of a password, and a code sent to one of the account's confirmed devices.

Built like the password reset's request (``services.password_reset``): the same work and
the same answer whether or not an account matched (one user query, one device query, the
same limits taken, a flow recorded); the code leaves after the response
(``password_reset.deliver_after``). The send goes through ``issue_challenge``, so the
send caps, the SMS-pumping guard (per calling code and site budget) and the lockout
apply; the code is judged by ``verify_challenge`` under the user's lockout budget. A
flow with no code behind it (no account) counts wrong codes and locks like a real one.

The flow lives in the cache under a random id (the only thing the client holds), with
the user's security epoch. ``CODE_LOGIN_SINGLE_FACTOR`` decides what an accepted code is
worth: one factor (the default; a second, independent one is then asked: an app, a
security key, or a code to another device) or, for an account without a usable
password, the whole sign-in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db.models import F
from django.http import HttpRequest
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..constants import Purpose
from ..exceptions import (
    ChallengeLockedError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
)
from ..models import AuditEvent, Challenge, Device
from ..utils import client_ip
from . import accounts, audit, epoch, guard, limits
from .challenges import cancel_challenge, issue_challenge, verify_challenge

__all__ = ["CodeLogin", "Outcome", "request_code", "verify_code"]

_PREFIX = "otp_auth:code-login:"
MAX_MATCHES = 2
SUBJECT_SALT = "otp_auth.code-login.subject"


@dataclass(frozen=True)
class CodeLogin:
    """A recorded request: ``flow`` is what the client keeps; ``deliver`` sends the code
    (a no-op when no account matched or a limit refused)."""

    flow: str
    deliver: Callable[[], None]


@dataclass(frozen=True)
class Outcome:
    """An accepted code: the user, the device the code went to, and whether the code
    alone signs the user in (``complete``) or a second factor is still due."""

    user: Any
    device_id: int | None
    complete: bool


def _cache() -> Any:
    return caches[app_settings.CACHE]


def request_code(identifier: object, *, request: HttpRequest | None = None) -> CodeLogin:
    """Record a code sign-in for the account behind ``identifier`` and prepare its code.

    Never raises for an unknown or ambiguous identifier, an account without a device, or
    a request over a limit: the caller answers all of them alike (and audits show why).
    """
    text = accounts.identifier(identifier)
    phone = accounts.as_phone(text)
    users = accounts.matching_users(text, phone, limit=MAX_MATCHES)
    user = users[0] if len(users) == 1 else None
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    owner = {"user_id": user.pk if user is not None else 0}
    devices = list(Device.objects.confirmed().filter(**owner).order_by(*ordering))
    device, channel = accounts.pick_device(devices, text, phone, "")
    subject = accounts.limit_subject(user, text, salt=SUBJECT_SALT)
    ip = client_ip(request)
    by_ip = [("code_login_per_ip", f"ip:{ip}"), ("send_per_ip", f"ip:{ip}")] if ip else []
    limited: RateLimitedError | None = None
    try:
        limits.take_all([("code_login_per_account", subject), *by_ip])
    except RateLimitedError as exc:
        limited = exc
    flow = secrets.token_urlsafe(24)
    record = {
        "user": str(user.pk) if user is not None else "",
        "challenge": "",
        "device": device.pk if device is not None else None,
        "epoch": epoch.current(user) if user is not None else 0,
        "started": time.time(),
        "attempts": 0,
    }
    _cache().set(_PREFIX + flow, record, app_settings.CODE_TTL)
    reason = accounts.request_reason(
        limited, user, users, device, request=request, purpose=Purpose.LOGIN
    )
    audit.log(
        AuditEvent.Kind.CODE_LOGIN_REQUESTED,
        user=user,
        request=request,
        purpose=Purpose.LOGIN,
        channel=channel,
        destination=device.masked_destination if device is not None else "",
        reason=reason,
    )
    if reason != "code":
        return CodeLogin(flow, _nothing)
    assert user is not None and device is not None

    def deliver() -> None:
        try:
            challenge = issue_challenge(
                user=user, device=device, purpose=Purpose.LOGIN, channel=channel, request=request
            )
        except OTPAuthError:
            return  # audited where raised: a failed send, a send limit, a lock
        current = _cache().get(_PREFIX + flow)
        if isinstance(current, dict):
            _cache().set(
                _PREFIX + flow, {**current, "challenge": challenge.public_id}, app_settings.CODE_TTL
            )
        else:
            cancel_challenge(challenge.public_id)

    return CodeLogin(flow, deliver)


def _nothing() -> None:
    return None


def verify_code(flow: object, code: object, *, request: HttpRequest | None = None) -> Outcome:
    """Judge ``code`` for the sign-in ``flow``. Raises ``InvalidCodeError``,
    ``ChallengeLockedError``, ``RateLimitedError`` like every code, ``FlowExpiredError``
    when the flow is over or the account changed since; ``DeviceError`` when the code was
    right but the account has no second factor to finish with (it must use its password).
    """
    if not isinstance(flow, str) or not 0 < len(flow) <= 64:
        raise InvalidCodeError("unknown")
    key = _PREFIX + flow
    record = _cache().get(key)
    if not isinstance(record, dict):
        raise FlowExpiredError()
    if time.time() - float(record["started"]) > app_settings.CODE_TTL:
        _cache().delete(key)
        raise FlowExpiredError()
    if not record["user"] or not record["challenge"]:
        # No code behind this flow (no account, no device, a limit, a failed send):
        # refused codes are counted from this address and lock the flow like a real one.
        guard.before_verify(request)
        attempts = int(record["attempts"]) + 1
        _cache().set(key, {**record, "attempts": attempts}, app_settings.CODE_TTL)
        if attempts >= app_settings.MAX_ATTEMPTS:
            raise ChallengeLockedError()
        raise InvalidCodeError("unknown")
    user_model = get_user_model()
    owner = user_model(pk=user_model._meta.pk.to_python(record["user"]))
    if not epoch.is_current(owner.pk, int(record["epoch"])):
        _cache().delete(key)
        cancel_challenge(record["challenge"])
        raise FlowExpiredError()
    challenge: Challenge = verify_challenge(
        record["challenge"], code, purpose=Purpose.LOGIN, user=owner, request=request
    )
    _cache().delete(key)
    user = challenge.user
    alone = app_settings.CODE_LOGIN_SINGLE_FACTOR and not user.has_usable_password()
    return Outcome(user=user, device_id=challenge.device_id, complete=alone)


def second_step_devices(user: Any, device_id: int | None) -> list[Device]:
    """The confirmed devices a second factor may come from: every one but the device that
    got the sign-in code (a second code there would prove the same thing twice)."""
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    qs = Device.objects.confirmed().filter(user=user).exclude(pk=device_id or 0)
    return list(qs.order_by(*ordering))


def no_second_factor() -> DeviceError:
    return DeviceError(
        _("This account has no second factor besides this device: sign in with your password.")
    )
