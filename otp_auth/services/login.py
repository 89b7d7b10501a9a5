"""The two-step login and the verified-session marker.

After the password step the session holds only the pending user id, the backend path,
a random flow id, the flow start, the challenge id and the validated ``next`` URL: never
the password or the code. ``request.user`` stays anonymous until the code is accepted,
and ``login()`` then runs with a fresh session key.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth import SESSION_KEY, get_user_model, login, logout
from django.db.models import F
from django.http import HttpRequest

from ..conf import app_settings
from ..constants import (
    PENDING_SESSION_KEY,
    STEP_UP_SESSION_KEY,
    VERIFIED_SESSION_KEY,
    ChallengeStatus,
    Purpose,
)
from ..exceptions import (
    ChallengeLockedError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    ResendLimitError,
    ResendTooSoonError,
)
from ..models import Challenge, Device
from .challenges import (
    cancel_challenge,
    issue_challenge,
    resend_available_in,
    resend_challenge,
    verify_challenge,
)

__all__ = [
    "PendingLogin",
    "cancel_login",
    "complete_login",
    "get_pending_login",
    "is_session_verified",
    "mark_verified",
    "resend_login_code",
    "start_login",
    "switch_device",
]


@dataclass
class PendingLogin:
    """What the session remembers between the password step and the code step."""

    user_id: str
    backend: str
    flow_id: str
    started_at: float
    challenge_id: str
    next_url: str
    device_id: int
    resume: bool = False

    def expired(self) -> bool:
        return time.time() - self.started_at > app_settings.LOGIN_TIMEOUT


def _store(request: HttpRequest, pending: PendingLogin) -> None:
    request.session[PENDING_SESSION_KEY] = asdict(pending)


def confirmed_devices(user: Any) -> list[Device]:
    """The user's confirmed devices, most recently used first."""
    # Explicit NULLS LAST: PostgreSQL sorts never-used devices first on a plain DESC.
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    return list(Device.objects.confirmed().for_user(user).order_by(*ordering))


def start_login(
    request: HttpRequest,
    user: Any,
    *,
    backend: str,
    next_url: str = "",
    devices: list[Device] | None = None,
    resume: bool = False,
) -> Challenge | None:
    """Begin the second step for a user whose password (or other login) was accepted.

    Returns the challenge sent, or ``None`` when the user has no confirmed device (the
    caller then decides, from ``REQUIRE_ENROLLMENT``, what happens). ``resume`` is for a
    session already logged in by another path that still needs its second factor.
    Raises ``DeliveryError`` when the code cannot be sent; the flow is then discarded.
    """
    devices = confirmed_devices(user) if devices is None else devices
    if not devices:
        return None
    discard_pending(request)
    if not resume:
        if SESSION_KEY in request.session:
            # Someone else is logged in on this browser: end that session entirely.
            logout(request)
        elif request.session.session_key is not None:
            # A new key for the partial session defeats a fixed pre-login session id. A
            # session with no stored key (loaded above, by discard_pending) has none to
            # fix: it gets a fresh key when first saved, and cycling would write it twice.
            request.session.cycle_key()
    device = devices[0]
    challenge = issue_challenge(user=user, device=device, purpose=Purpose.LOGIN, request=request)
    _store(
        request,
        PendingLogin(
            user_id=str(user.pk),
            backend=backend,
            flow_id=secrets.token_urlsafe(16),
            started_at=time.time(),
            challenge_id=challenge.public_id,
            next_url=next_url,
            device_id=device.pk,
            resume=resume,
        ),
    )
    return challenge


def get_pending_login(request: HttpRequest) -> PendingLogin | None:
    """The pending login, or ``None``. Raises ``FlowExpiredError`` (and discards the flow)
    when it is older than ``LOGIN_TIMEOUT``."""
    raw = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        pending = PendingLogin(**raw)
    except TypeError:
        discard_pending(request)
        return None
    if pending.expired():
        discard_pending(request)
        raise FlowExpiredError()
    return pending


def discard_pending(request: HttpRequest) -> None:
    """Forget the pending flow and cancel its challenge."""
    raw = request.session.pop(PENDING_SESSION_KEY, None)
    if isinstance(raw, dict):
        cancel_challenge(raw.get("challenge_id"))


def complete_login(request: HttpRequest, code: object) -> tuple[Any, str]:
    """Check the code of the pending login and log the user in.

    Returns ``(user, next_url)``. Raises ``InvalidCodeError``/``ChallengeLockedError`` on
    a refused code, ``FlowExpiredError`` after ``LOGIN_TIMEOUT``.
    """
    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    challenge = verify_challenge(
        pending.challenge_id, code, purpose=Purpose.LOGIN, user=_owner(pending), request=request
    )
    user = challenge.user
    request.session.pop(PENDING_SESSION_KEY, None)
    login(request, user, backend=pending.backend)
    if pending.resume:
        # login() does not rotate the key of a session that is already this user's.
        request.session.cycle_key()
    mark_verified(request, user, challenge)
    return user, pending.next_url


def mark_verified(request: HttpRequest, user: Any, challenge: Challenge | None) -> None:
    """Record in the session that ``user`` passed the second factor (also counts as a
    fresh step-up, so sensitive pages right after login need no second code)."""
    now = int(time.time())
    request.session[VERIFIED_SESSION_KEY] = {
        "user": str(user.pk),
        "at": now,
        "device": challenge.device_id if challenge else None,
        "channel": challenge.channel if challenge else "",
    }
    request.session[STEP_UP_SESSION_KEY] = {"user": str(user.pk), "at": now}


def is_session_verified(request: HttpRequest, user: Any) -> bool:
    """True when this session passed the second factor for ``user``. No query."""
    marker = request.session.get(VERIFIED_SESSION_KEY)
    return isinstance(marker, dict) and marker.get("user") == str(user.pk)


def switch_device(request: HttpRequest, device_id: object) -> Challenge:
    """Send the pending login's code to another confirmed device of the same user.

    The old challenge is cancelled; the new one inherits its wrong attempts and send
    count, and the resend cooldown applies.
    """
    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    try:
        device = Device.objects.confirmed().get(pk=int(str(device_id)), user_id=pending.user_id)
    except (Device.DoesNotExist, ValueError, TypeError) as exc:
        raise DeviceError() from exc
    current = Challenge.objects.filter(
        public_id=pending.challenge_id, user_id=pending.user_id
    ).first()
    if current is None:
        raise InvalidCodeError("unknown")
    if current.status == ChallengeStatus.LOCKED:
        raise ChallengeLockedError()
    # Switching is a resend to another device: same cooldown, same budget of sends.
    if current.send_count > app_settings.MAX_RESENDS:
        raise ResendLimitError()
    wait = resend_available_in(current)
    if wait:
        raise ResendTooSoonError(wait)
    cancel_challenge(pending.challenge_id)
    challenge = issue_challenge(
        user=device.user, device=device, purpose=Purpose.LOGIN, request=request, replaces=current
    )
    pending.challenge_id = challenge.public_id
    pending.device_id = device.pk
    _store(request, pending)
    return challenge


def cancel_login(request: HttpRequest) -> None:
    """Abandon the pending login: cancel its challenge and end the session."""
    discard_pending(request)
    logout(request)


def resend_login_code(request: HttpRequest) -> Challenge:
    """Resend the pending login's code (same challenge, new code, same attempt count)."""
    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    return resend_challenge(pending.challenge_id, user=_owner(pending), request=request)


def _owner(pending: PendingLogin) -> Any:
    # An unsaved instance carrying only the pk: enough to check ownership without a query.
    user_model = get_user_model()
    return user_model(pk=user_model._meta.pk.to_python(pending.user_id))
