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
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..constants import (
    PENDING_SESSION_KEY,
    STEP_UP_SESSION_KEY,
    VERIFIED_SESSION_KEY,
    ChallengeStatus,
    Purpose,
)
from ..exceptions import (
    AccountLockedError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    RateLimitedError,
    wait_text,
)
from ..models import Challenge, Device, TOTPDevice
from . import epoch
from .challenges import (
    cancel_challenge,
    issue_challenge,
    send_in_flow,
    verify_challenge,
)
from .factors import confirmed_totp_devices, has_recovery_codes, order_by_last_use

__all__ = [
    "PendingLogin",
    "cancel_login",
    "choose_factor",
    "complete_login",
    "gain_second_factor",
    "get_pending_login",
    "is_session_verified",
    "mark_verified",
    "resend_login_code",
    "session_expired",
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
    #: The user's security epoch when the password was accepted.
    epoch: int = 0
    #: Why the default factor could not be used (a send limit), shown on the code page.
    notice: str = ""

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
        epoch=epoch.current(user),
    )
    ordered = order_by_last_use(devices, authenticators)
    first = ordered[0]
    if isinstance(first, TOTPDevice):
        pending.factor, pending.totp_id = "totp", first.pk
    else:
        try:
            challenge = issue_challenge(
                user=user,
                device=first,
                purpose=Purpose.LOGIN,
                request=request,
                flow_id=pending.flow_id,
            )
        except RateLimitedError as exc:
            _fall_back(pending, exc, first, ordered)
        else:
            pending.challenge_id, pending.device_id = challenge.public_id, first.pk
    _store(request, pending)
    return pending


def _fall_back(
    pending: PendingLogin,
    error: RateLimitedError,
    device: Device,
    ordered: list[Device | TOTPDevice],
) -> None:
    """The default device's sends are limited: offer the user's other factors instead
    of refusing the sign-in, and say what is limited (someone who knows the password
    cannot lock the owner out by spending the phone's send budget)."""
    if isinstance(error, AccountLockedError) or error.retry_after is None:
        raise error  # every factor is locked, not just this device's sends
    others = [row for row in ordered if row is not device]
    if not others and not has_recovery_codes(pending.user_id):
        error.message = limited_message(device, error)
        raise error
    pending.notice = notice_for(device, error)
    pending.device_id = device.pk
    app = next((row for row in others if isinstance(row, TOTPDevice)), None)
    if app is not None:
        pending.factor, pending.totp_id = "totp", app.pk
    elif has_recovery_codes(pending.user_id) and not others:
        pending.factor = "recovery"
    # else: stay on the device with no code sent; the page offers the other devices.


def limited_message(device: Device, error: RateLimitedError) -> str:
    """What the password step says when no code can be sent and there is no other
    factor: which limit stopped it, not a bare "too many attempts"."""
    values = {"device": device.label, "wait": wait_text(max(int(error.retry_after or 1), 1))}
    if error.limit == "send_per_destination":
        text = _(
            "No more codes can be sent to %(device)s for %(wait)s: too many were sent to "
            "it recently."
        )
    elif error.limit in ("send_per_user", "enroll_send_per_user"):
        text = _(
            "No more codes can be sent to your account for %(wait)s: too many were sent recently."
        )
    elif error.limit in ("send_per_ip", "enroll_send_per_ip"):
        text = _(
            "Too many codes were asked for from this network: no more can be sent for %(wait)s."
        )
    else:
        text = _("Codes cannot be sent for %(wait)s: too many were sent recently.")
    return text % values


def notice_for(device: Device, error: RateLimitedError) -> str:
    """What the code page says when the default device's sends are limited."""
    return _(
        "No more codes can be sent to %(device)s for %(wait)s: too many were sent "
        "recently. Use another way to sign in below."
    ) % {"device": device.label, "wait": wait_text(max(int(error.retry_after or 1), 1))}


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
    if pending.expired() or not epoch.is_current(pending.user_id, pending.epoch):
        # Too old, or the account changed since the password was accepted (a reset, a
        # factor change, "sign out everywhere"): this flow vouches for nothing any more.
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
    ``e`` (the security epoch) lets a later change to the account end this session
    (``services.epoch``); ``at`` and ``seen`` serve the optional session lifetimes.
    """
    now = int(time.time())
    value = epoch.current(user)
    request.session[VERIFIED_SESSION_KEY] = {
        "user": str(user.pk),
        "at": now,
        "device": challenge.device_id if challenge else None,
        "channel": challenge.channel if challenge else "",
        "factor": factor or ("code" if challenge else ""),
        "seen": now,
        **epoch.session_stamp(value),
    }
    if step_up:
        request.session[STEP_UP_SESSION_KEY] = {
            "user": str(user.pk),
            "at": now,
            **epoch.session_stamp(value),
        }


def gain_second_factor(
    request: HttpRequest, user: Any, challenge: Challenge | None, *, factor: str
) -> None:
    """A password-only session just confirmed its first factor: it now vouches for more
    than before, so it gets a new key (no fixed session id carries over), then the mark."""
    request.session.cycle_key()
    mark_verified(request, user, challenge, factor=factor)


def session_expired(request: HttpRequest, user: Any) -> bool:
    """True when this verified session outlived ``VERIFIED_SESSION_MAX_AGE`` or sat idle
    past ``VERIFIED_SESSION_IDLE_TIMEOUT`` (both off by default). No query: the times
    live in the session, and the idle clock is written at most once a minute."""
    max_age = app_settings.VERIFIED_SESSION_MAX_AGE
    idle = app_settings.VERIFIED_SESSION_IDLE_TIMEOUT
    if not max_age and not idle:
        return False
    marker = request.session.get(VERIFIED_SESSION_KEY)
    if not isinstance(marker, dict) or marker.get("user") != str(user.pk):
        return False
    now = time.time()
    verified_at = _number(marker.get("at"))
    seen = _number(marker.get("seen", verified_at))
    if (max_age and now - verified_at > max_age) or (idle and now - seen > idle):
        return True
    if idle and now - seen >= IDLE_WRITE_INTERVAL:
        request.session[VERIFIED_SESSION_KEY] = {**marker, "seen": int(now)}
    return False


IDLE_WRITE_INTERVAL = 60


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def is_session_verified(request: HttpRequest, user: Any) -> bool:
    """True when this session passed the second factor for ``user``. No query."""
    marker = request.session.get(VERIFIED_SESSION_KEY)
    return isinstance(marker, dict) and marker.get("user") == str(user.pk)


def switch_device(request: HttpRequest, device_id: object) -> Challenge:
    """Send the pending login's code to another confirmed device of the same user.

    Under the flow's one rule (``challenges.send_in_flow``): the old challenge is
    cancelled, the new one inherits its wrong attempts and send count, and the resend
    cooldown applies.
    """
    pending = get_pending_login(request)
    if pending is None:
        raise InvalidCodeError("unknown")
    try:
        device = Device.objects.confirmed().get(pk=int(str(device_id)), user_id=pending.user_id)
    except (Device.DoesNotExist, ValueError, TypeError) as exc:
        raise DeviceError() from exc
    challenge = send_in_flow(pending.flow_id, user=device.user, device=device, request=request)
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
    if pending is None or pending.factor != "code" or not pending.challenge_id:
        raise InvalidCodeError("unknown")
    return send_in_flow(pending.flow_id, user=_owner(pending), request=request)


def _owner(pending: PendingLogin) -> Any:
    # An unsaved instance carrying only the pk: enough to check ownership without a query.
    user_model = get_user_model()
    return user_model(pk=user_model._meta.pk.to_python(pending.user_id))
