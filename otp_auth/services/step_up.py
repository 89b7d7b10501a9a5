"""Fresh second factor for sensitive actions (removing a device, changing settings).

A step-up is a challenge with purpose ``step_up`` for the logged-in user, or a code from
one of the user's authenticator apps. Passing it stamps the session;
``has_recent_step_up`` tells whether the stamp is younger than ``STEP_UP_MAX_AGE``.
Completing the login also stamps it (a remembered browser does not).
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest

from ..conf import app_settings
from ..constants import STEP_UP_SESSION_KEY, Purpose
from ..exceptions import DeviceError, InvalidCodeError
from ..models import Challenge
from . import epoch, guard
from .challenges import cancel_challenge, issue_challenge, verify_challenge
from .login import confirmed_devices

__all__ = [
    "complete_step_up",
    "complete_step_up_with_key",
    "complete_step_up_with_totp",
    "has_recent_step_up",
    "pending_step_up",
    "start_step_up",
]

_PENDING = "_otp_auth_step_up_pending"


def has_recent_step_up(request: HttpRequest, user: Any, max_age: int | None = None) -> bool:
    """True if ``user`` passed a second factor in this session within ``max_age`` seconds,
    under the account's current security epoch."""
    max_age = app_settings.STEP_UP_MAX_AGE if max_age is None else max_age
    stamp = request.session.get(STEP_UP_SESSION_KEY)
    return (
        isinstance(stamp, dict)
        and stamp.get("user") == str(user.pk)
        and time.time() - float(stamp.get("at", 0)) <= max_age
        and epoch.is_current(user, stamp.get("e", 0))
    )


def start_step_up(
    request: HttpRequest, user: Any, *, device_id: object = None, next_url: str = ""
) -> Challenge:
    """Send a step-up code to one of the user's confirmed devices."""
    devices = [d for d in confirmed_devices(user) if guard.serves_purpose(d, Purpose.STEP_UP)]
    if device_id not in (None, ""):
        devices = [d for d in devices if str(d.pk) == str(device_id)]
    if not devices:
        raise DeviceError()
    previous = request.session.get(_PENDING)
    if isinstance(previous, dict):
        cancel_challenge(previous.get("challenge_id"), user=user)
    challenge = issue_challenge(
        user=user, device=devices[0], purpose=Purpose.STEP_UP, request=request
    )
    request.session[_PENDING] = {"challenge_id": challenge.public_id, "next_url": next_url}
    return challenge


def pending_step_up(request: HttpRequest) -> dict[str, str] | None:
    """The session's pending step-up (challenge id and next URL), if any."""
    raw = request.session.get(_PENDING)
    return raw if isinstance(raw, dict) else None


def complete_step_up(request: HttpRequest, user: Any, code: object) -> str:
    """Check the step-up code; on success stamp the session and return the next URL."""
    pending = pending_step_up(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    verify_challenge(
        pending.get("challenge_id"), code, purpose=Purpose.STEP_UP, user=user, request=request
    )
    request.session.pop(_PENDING, None)
    _stamp(request, user)
    return pending.get("next_url", "")


def complete_step_up_with_totp(
    request: HttpRequest, user: Any, code: object, *, device_id: object = None
) -> None:
    """Check a code from one of the user's authenticator apps and stamp the session.

    Raises like ``totp.verify_totp``; a code accepted here cannot be used again.
    """
    from .totp import verify_totp

    verify_totp(user, code, device_id=device_id, request=request)
    pending = pending_step_up(request)
    if pending is not None:
        cancel_challenge(pending.get("challenge_id"), user=user)
        request.session.pop(_PENDING, None)
    _stamp(request, user)


def complete_step_up_with_key(
    request: HttpRequest, user: Any, ceremony_id: object, response: object, *, bind: str
) -> None:
    """Check an assertion by one of the user's security keys or passkeys and stamp the
    session. Raises like ``webauthn.verify_assertion``."""
    from .webauthn import verify_assertion

    verify_assertion(user, ceremony_id, response, bind=bind, request=request)
    pending = pending_step_up(request)
    if pending is not None:
        cancel_challenge(pending.get("challenge_id"), user=user)
        request.session.pop(_PENDING, None)
    _stamp(request, user)


def _stamp(request: HttpRequest, user: Any) -> None:
    request.session[STEP_UP_SESSION_KEY] = {
        "user": str(user.pk),
        "at": int(time.time()),
        **epoch.session_stamp(epoch.current(user)),
    }
