"""The two-step login and the verified-session marker.

After the password step the session holds only the pending user id, the backend path,
a random flow id, the flow start, the challenge id, the chosen factor and the validated
``next`` URL: never the password or the code. ``request.user`` stays anonymous until the
code is accepted, and ``login()`` then runs with a fresh session key.

The second step takes any confirmed factor: a code sent to a device, a code from an
authenticator app, or a recovery code. The default is the factor used most recently;
``choose_factor`` switches.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    login,
    logout,
)
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
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
)
from ..models import Challenge, Device, TOTPDevice
from . import revocation
from .challenges import (
    cancel_challenge,
    ensure_resendable,
    issue_challenge,
    resend_challenge,
    verify_challenge,
)
from .factors import confirmed_totp_devices, has_recovery_codes, order_by_last_use

__all__ = [
    "PendingLogin",
    "cancel_login",
    "choose_factor",
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
    #: "code" (a code sent to ``device_id``), "totp" (app ``totp_id``) or "recovery".
    factor: str = "code"
    totp_id: int | None = None

    def expired(self) -> bool:
        return time.time() - self.started_at > app_settings.LOGIN_TIMEOUT

    @property
    def factor_key(self) -> str:
        """The key of the current factor, as ``factors.Factor.key``."""
        if self.factor == "totp":
            return f"totp:{self.totp_id}"
        if self.factor == "recovery":
            return "recovery"
        return f"device:{self.device_id}"


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
) -> PendingLogin | None:
    """Begin the second step for a user whose password (or other login) was accepted.

    Returns the pending login, or ``None`` when the user has no confirmed factor (the
    caller then decides, from ``REQUIRE_ENROLLMENT``, what happens). The most recently
    used factor comes first: for a device a code is sent now, for an authenticator app
    nothing is sent. ``resume`` is for a session already logged in by another path that
    still needs its second factor. Raises ``DeliveryError`` when the code cannot be
    sent; the flow is then discarded.
    """
    devices = confirmed_devices(user) if devices is None else devices
    authenticators = confirmed_totp_devices(user)
    if not devices and not authenticators:
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
    pending = PendingLogin(
        user_id=str(user.pk),
        backend=backend,
        flow_id=secrets.token_urlsafe(16),
        started_at=time.time(),
        challenge_id="",
        next_url=next_url,
        device_id=0,
        resume=resume,
    )
    first = order_by_last_use(devices, authenticators)[0]
    if isinstance(first, TOTPDevice):
        pending.factor, pending.totp_id = "totp", first.pk
    else:
        challenge = issue_challenge(user=user, device=first, purpose=Purpose.LOGIN, request=request)
        pending.challenge_id, pending.device_id = challenge.public_id, first.pk
    _store(request, pending)
    return pending


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
    from .recovery import use_recovery_code
    from .totp import verify_totp

    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    challenge = None
    if pending.factor == "totp":
        user = verify_totp(_owner(pending), code, device_id=pending.totp_id, request=request).user
    elif pending.factor == "recovery":
        user, _remaining = use_recovery_code(_owner(pending), code, request=request)
    else:
        challenge = verify_challenge(
            pending.challenge_id, code, purpose=Purpose.LOGIN, user=_owner(pending), request=request
        )
        user = challenge.user
    if challenge is None:
        # A sent code still pending (the user chose another factor) must not outlive it.
        discard_pending(request)
    else:
        request.session.pop(PENDING_SESSION_KEY, None)
    _login_with_new_key(request, user, pending.backend)
    mark_verified(request, user, challenge, factor=pending.factor)
    return user, pending.next_url


def _login_with_new_key(request: HttpRequest, user: Any, backend: str) -> None:
    """Django's ``login()``, with exactly one session-key rotation.

    ``login()`` rotates with ``cycle_key()``, which writes the new session row at once and
    again at the end of the request, and does not rotate at all for a session already
    logged in as this user (a resumed verification). Flushing first and carrying the data
    over rotates in every case, with one write at the end of the request.
    """
    data = dict(request.session.items())
    request.session.flush()
    request.session.update(data)
    # Pre-set what login() compares, so it keeps this fresh session instead of cycling it.
    request.session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    request.session[BACKEND_SESSION_KEY] = backend
    request.session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    login(request, user, backend=backend)


def mark_verified(
    request: HttpRequest,
    user: Any,
    challenge: Challenge | None,
    *,
    factor: str = "",
    step_up: bool = True,
) -> None:
    """Record in the session that ``user`` passed the second factor.

    It also counts as a fresh step-up (sensitive pages right after login need no second
    code), except with ``step_up=False``: a remembered browser proves no fresh factor.
    ``ts`` and ``v`` let other sessions end this one later (``services.revocation``).
    """
    now = int(time.time())
    request.session[VERIFIED_SESSION_KEY] = {
        "user": str(user.pk),
        "at": now,
        "device": challenge.device_id if challenge else None,
        "channel": challenge.channel if challenge else "",
        "factor": factor or ("code" if challenge else ""),
        **revocation.stamp(),
    }
    if step_up:
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
    current = None
    if pending.challenge_id:
        current = Challenge.objects.filter(
            public_id=pending.challenge_id, user_id=pending.user_id
        ).first()
        if current is None:
            raise InvalidCodeError("unknown")
    if current is not None:
        ensure_resendable(current)  # another device is a resend there
        cancel_challenge(pending.challenge_id)
    challenge = issue_challenge(
        user=device.user, device=device, purpose=Purpose.LOGIN, request=request, replaces=current
    )
    pending.challenge_id = challenge.public_id
    pending.device_id = device.pk
    pending.factor, pending.totp_id = "code", None
    _store(request, pending)
    return challenge


def choose_factor(request: HttpRequest, key: object) -> PendingLogin:
    """Switch the pending login to another factor (a ``factors.Factor.key``).

    Choosing an app or recovery codes sends nothing, and a code already sent stays valid
    for when the user comes back to its device. Choosing another device sends a code
    there, under the rules of ``switch_device``. Raises ``DeviceError`` for a factor the
    user does not have.
    """
    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    kind, _, raw_pk = str(key).partition(":")
    if kind == "recovery" and not raw_pk:
        if not has_recovery_codes(pending.user_id):
            raise DeviceError()
        pending.factor = "recovery"
    elif kind == "totp":
        pk = _pk(raw_pk)
        if not TOTPDevice.objects.filter(pk=pk, user_id=pending.user_id, confirmed=True).exists():
            raise DeviceError()
        pending.factor, pending.totp_id = "totp", pk
    elif kind == "device":
        pk = _pk(raw_pk)
        current = (
            Challenge.objects.filter(public_id=pending.challenge_id, user_id=pending.user_id)
            .values_list("device_id", "status")
            .first()
            if pending.challenge_id
            else None
        )
        if current != (pk, ChallengeStatus.PENDING):
            switch_device(request, pk)
            return get_pending_login(request) or pending
        # Back to the device whose code is still valid: nothing new is sent.
        pending.factor, pending.totp_id = "code", None
    else:
        raise DeviceError()
    _store(request, pending)
    return pending


def _pk(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise DeviceError()
    return int(raw)


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
