"""The two-step login and the verified-session marker.

Between the password step and the code step the pending login travels with the browser
as a signed, short-lived, epoch-bound cookie (``PENDING_COOKIE_NAME``), like the API's
flow token: the pending user id, the backend path, a random flow id, the flow start, the
challenge id, the chosen factor, the validated ``next`` URL, the user's security epoch
and what the code page shows (masked labels): never the password or the code. No
session row is written before the second factor; the challenge row stays the
server-side truth of a sent code, and a success or a cancel spends the flow (a marker in
the cache), so the cookie can be replayed neither before nor after. ``request.user``
stays anonymous until the code is accepted, and ``login()`` then runs with a fresh
session key.

The second step takes any confirmed factor: a code sent to a device, a code from an
authenticator app, or a recovery code. The default is the factor used most recently;
``choose_factor`` switches.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    login,
    logout,
)
from django.core import signing
from django.core.cache import caches
from django.db.models import Exists, F, OuterRef
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..constants import (
    PENDING_COOKIE_NAME,
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
from ..models import Challenge, Device, Lockout, RecoveryCode, TOTPDevice, WebAuthnCredential
from . import epoch, guard, lockout, trusted
from .challenges import (
    cancel_challenge,
    issue_challenge,
    send_in_flow,
    verify_challenge,
)
from .factors import (
    Factor,
    _last_used,
    confirmed_totp_devices,
    has_recovery_codes,
    order_by_last_use,
    user_factors,
    webauthn_credentials,
    webauthn_factor,
)

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
    "sign_in",
    "start_login",
    "switch_device",
    "write_pending_cookie",
]

PENDING_SALT = "otp_auth.login.pending"
MAX_PENDING_COOKIE_LENGTH = 4000


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
    #: "code" (a code sent to ``device_id``), "totp" (app ``totp_id``), "webauthn" (a
    #: security key or passkey) or "recovery".
    factor: str = "code"
    totp_id: int | None = None
    #: The user's security epoch when the password was accepted.
    epoch: int = 0
    #: Why the default factor could not be used (a send limit), shown on the code page.
    notice: str = ""
    #: What the code page shows, as the password step found it: the user's factors
    #: (``[key, kind, label, pk, channel]``), the sent code's channel, masked destination
    #: and send time, and whether "remember this browser" is offered.
    page: dict[str, Any] = field(default_factory=dict)

    def expired(self) -> bool:
        return time.time() - self.started_at > app_settings.LOGIN_TIMEOUT

    @property
    def factor_key(self) -> str:
        """The key of the current factor, as ``factors.Factor.key``."""
        if self.factor == "totp":
            return f"totp:{self.totp_id}"
        if self.factor in ("recovery", "webauthn"):
            return self.factor
        return f"device:{self.device_id}"


def _signer() -> signing.Signer:
    # No timestamp of its own: the flow carries its start, which every step keeps.
    return signing.Signer(salt=PENDING_SALT)


def _spent_key(flow_id: str) -> str:
    return f"otp_auth:login-flow-spent:{flow_id}"


def _store(request: HttpRequest, pending: PendingLogin) -> None:
    """Keep ``pending`` for the rest of this request and for the browser's next one."""
    request._otp_auth_pending = pending  # type: ignore[attr-defined]
    request._otp_auth_pending_out = _signer().sign_object(  # type: ignore[attr-defined]
        asdict(pending), compress=True
    )


def _forget(request: HttpRequest) -> None:
    request._otp_auth_pending = None  # type: ignore[attr-defined]
    request._otp_auth_pending_out = ""  # type: ignore[attr-defined]


def _spend(pending: PendingLogin) -> None:
    """Refuse this flow's cookie from now on (its success, or a cancel)."""
    timeout = int(app_settings.LOGIN_TIMEOUT - (time.time() - pending.started_at)) + 60
    caches[app_settings.CACHE].set(_spent_key(pending.flow_id), True, max(timeout, 60))


def _load(request: HttpRequest) -> PendingLogin | None:
    """The pending login this request carries (or set earlier in this request)."""
    if hasattr(request, "_otp_auth_pending"):
        found: PendingLogin | None = request._otp_auth_pending
        return found
    pending = None
    raw = request.COOKIES.get(PENDING_COOKIE_NAME, "")
    if raw and len(raw) <= MAX_PENDING_COOKIE_LENGTH:
        try:
            data = _signer().unsign_object(raw)
            pending = PendingLogin(**data) if isinstance(data, dict) else None
        except (signing.BadSignature, TypeError, ValueError):
            pending = None
    if pending is not None and caches[app_settings.CACHE].get(_spent_key(pending.flow_id)):
        pending = None
    request._otp_auth_pending = pending  # type: ignore[attr-defined]
    if pending is None and raw:
        request._otp_auth_pending_out = ""  # type: ignore[attr-defined]
    return pending


def write_pending_cookie(request: HttpRequest, response: HttpResponseBase) -> None:
    """Set or delete the pending-login cookie on ``response`` if this request changed
    it (the HTML login views call this on every response)."""
    value = getattr(request, "_otp_auth_pending_out", None)
    if value is None:
        return
    common: dict[str, Any] = {
        "path": settings.SESSION_COOKIE_PATH,
        "domain": settings.SESSION_COOKIE_DOMAIN,
        "samesite": settings.SESSION_COOKIE_SAMESITE or "Lax",
    }
    if value:
        response.set_cookie(
            PENDING_COOKIE_NAME,
            value,
            max_age=app_settings.LOGIN_TIMEOUT,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            **common,
        )
    elif PENDING_COOKIE_NAME in request.COOKIES:
        response.delete_cookie(PENDING_COOKIE_NAME, **common)


def restamp(request: HttpRequest, user_id: str, value: int) -> None:
    """A change made by this request moved the user's epoch: its own pending login
    (a resumed verification of this user) goes on under the new one."""
    pending = _load(request)
    if pending is not None and pending.user_id == user_id:
        pending.epoch = value
        _store(request, pending)


def confirmed_devices(user: Any) -> list[Device]:
    """The user's confirmed devices, most recently used first."""
    # Explicit NULLS LAST: PostgreSQL sorts never-used devices first on a plain DESC.
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    return list(Device.objects.confirmed().for_user(user).order_by(*ordering))


def _lookup(
    user: Any,
) -> tuple[list[Device], list[TOTPDevice], list[WebAuthnCredential], bool, Lockout | None]:
    """The user's confirmed devices (most recently used first), authenticator apps,
    security keys, whether recovery codes are left, and the lockout row: one query for a
    user with a device (the rest ride on it as subqueries), more only for what it says
    exists."""
    user_id = user.pk
    apps = TOTPDevice.objects.filter(user_id=OuterRef("user_id"), confirmed=True)
    keys = WebAuthnCredential.objects.filter(user_id=OuterRef("user_id"))
    codes = RecoveryCode.objects.filter(code_set__user_id=OuterRef("user_id"), used_at__isnull=True)
    locks = Lockout.objects.filter(user_id=OuterRef("user_id"))
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    devices = list(
        Device.objects.confirmed()
        .filter(user_id=user_id)
        .annotate(
            has_apps=Exists(apps),
            has_keys=Exists(keys),
            has_codes=Exists(codes),
            has_lock=Exists(locks.exclude(locked_until=None, disabled_at=None)),
            has_lockout=Exists(locks),
        )
        .order_by(*ordering)
    )
    # Keys count whatever WEBAUTHN says now: a setting turned off must never leave an
    # account that has only keys with its password alone.
    if not devices:
        ordered_apps = (F("last_used_at").desc(nulls_last=True), "-created_at")
        authenticators: list[TOTPDevice] = list(
            TOTPDevice.objects.filter(user_id=user_id, confirmed=True)
            .annotate(has_keys=Exists(keys))
            .order_by(*ordered_apps)
        )
        # With an app, its row says whether keys exist; without, they are looked up.
        with_keys = not authenticators or any(getattr(a, "has_keys", False) for a in authenticators)
        credentials = webauthn_credentials(user_id) if with_keys else []
        if not authenticators and not credentials:
            return [], [], [], False, None
        recovery = has_recovery_codes(user_id)
        return [], authenticators, credentials, recovery, _lockout_row(user_id)
    first: Any = devices[0]
    authenticators = confirmed_totp_devices(user_id) if first.has_apps else []
    credentials = webauthn_credentials(user_id) if first.has_keys else []
    state = None
    if first.has_lock:
        state = _lockout_row(user_id)
    elif first.has_lockout:
        state = Lockout(user_id=user_id)  # exists, and neither locked nor disabled
    return devices, authenticators, credentials, bool(first.has_codes), state


def _lockout_row(user_id: Any) -> Lockout | None:
    return Lockout.objects.filter(user_id=user_id).first()


def _page(
    request: HttpRequest,
    user: Any,
    ordered: list[Device | TOTPDevice],
    recovery: bool,
    challenge: Challenge | None,
    keys: list[WebAuthnCredential] | None = None,
) -> dict[str, Any]:
    factors: list[list[Any]] = []
    if keys:
        key = webauthn_factor(keys)
        factors.append([key.key, key.kind, key.label, None, ""])
    for row in ordered:
        if isinstance(row, TOTPDevice):
            factors.append([f"totp:{row.pk}", "totp", row.label, row.pk, ""])
        else:
            factors.append([f"device:{row.pk}", "code", row.label, row.pk, row.default_channel])
    if recovery:
        factors.append(["recovery", "recovery", str(_("A recovery code")), None, ""])
    page: dict[str, Any] = {"factors": factors, "remember": trusted.allowed_for(user)}
    if challenge is not None:
        page.update(
            channel=challenge.channel,
            dest=challenge.destination_masked,
            sent=challenge.last_sent_at.timestamp() if challenge.last_sent_at else 0,
        )
    return page


def page_factors(pending: PendingLogin) -> list[Factor]:
    """The factors the code page lists, as the password step found them (a fresh
    lookup for a pending login made without them)."""
    rows = pending.page.get("factors")
    if not isinstance(rows, list):
        return user_factors(pending.user_id)
    return [Factor(str(k), str(kind), str(label), pk, str(ch)) for k, kind, label, pk, ch in rows]


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
    recovery: bool | None = None
    if devices is None:
        devices, authenticators, keys, recovery, state = _lookup(user)
    else:
        authenticators = confirmed_totp_devices(user)
        keys = webauthn_credentials(user)
        state = _lockout_row(user.pk)
    usable = [d for d in devices if guard.serves_purpose(d, Purpose.LOGIN)]
    if not usable and not authenticators and not keys:
        if devices:
            # Factors exist but none may serve a sign-in (EMAIL_CODES_FOR): refuse rather
            # than fall back to the password alone.
            raise DeviceError()
        return None
    devices = usable
    discard_pending(request)
    if not resume and SESSION_KEY in request.session:
        # Someone else is logged in on this browser: end that session entirely. An
        # anonymous session is left alone: nothing is written to it before the second
        # factor, and ``login()`` gives it a new key then (no fixed id carries over).
        logout(request)
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
    first = ordered[0] if ordered else None
    challenge = None
    if keys and (first is None or _last_used(keys[0]) >= _last_used(first)):
        pending.factor = "webauthn"  # nothing to send: the browser asks the key
    elif isinstance(first, TOTPDevice):
        pending.factor, pending.totp_id = "totp", first.pk
    elif first is not None:
        try:
            # The lockout row was read with the factors a moment ago: no second read.
            with lockout.known_state(user.pk, state):
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
    if recovery is None:
        recovery = has_recovery_codes(user.pk)
    pending.page = _page(request, user, ordered, recovery, challenge, keys)
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
    has_keys = bool(webauthn_credentials(pending.user_id))
    if not others and not has_keys and not has_recovery_codes(pending.user_id):
        error.message = limited_message(device, error)
        raise error
    pending.notice = notice_for(device, error)
    pending.device_id = device.pk
    app = next((row for row in others if isinstance(row, TOTPDevice)), None)
    if has_keys:
        pending.factor = "webauthn"
    elif app is not None:
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
    pending = _load(request)
    if pending is None:
        return None
    if pending.expired() or not epoch.is_current(pending.user_id, pending.epoch):
        # Too old, or the account changed since the password was accepted (a reset, a
        # factor change, "sign out everywhere"): this flow vouches for nothing any more.
        discard_pending(request)
        raise FlowExpiredError()
    return pending


def discard_pending(request: HttpRequest) -> None:
    """Forget the pending flow, spend it and cancel its challenge."""
    pending = _load(request)
    _forget(request)
    if pending is not None:
        _spend(pending)
        cancel_challenge(pending.challenge_id)


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
    # One login per flow: of two requests carrying the same cookie (a replay, a double
    # submit), the first to get here wins. A sent code is single-use on its own row.
    timeout = max(int(app_settings.LOGIN_TIMEOUT - (time.time() - pending.started_at)) + 60, 60)
    if challenge is None and not caches[app_settings.CACHE].add(
        _spent_key(pending.flow_id), True, timeout
    ):
        raise InvalidCodeError("used")
    if challenge is None:
        # A sent code still pending (the user chose another factor) must not outlive it.
        cancel_challenge(pending.challenge_id)
    else:
        _spend(pending)
    _forget(request)
    _login_with_new_key(request, user, pending.backend)
    mark_verified(request, user, challenge, factor=pending.factor)
    return user, pending.next_url


def sign_in(request: HttpRequest, user: Any, *, backend: str, factor: str) -> None:
    """Log ``user`` in after a factor judged outside this module (a security key at the
    second step, a passkey, a code sign-in): any pending flow ends, the session gets a
    new key, and the verified mark is set."""
    discard_pending(request)
    _login_with_new_key(request, user, backend)
    mark_verified(request, user, None, factor=factor)


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
    _show(pending, challenge)
    _store(request, pending)
    return challenge


def _show(pending: PendingLogin, challenge: Challenge) -> None:
    """The code page now shows ``challenge`` (a resend or another device)."""
    sent = challenge.last_sent_at.timestamp() if challenge.last_sent_at else 0
    pending.page = {
        **pending.page,
        "channel": challenge.channel,
        "dest": challenge.destination_masked,
        "sent": sent,
    }


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
    elif kind == "webauthn" and not raw_pk:
        if not webauthn_credentials(pending.user_id):
            raise DeviceError()
        pending.factor = "webauthn"
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
    challenge = send_in_flow(pending.flow_id, user=_owner(pending), request=request)
    _show(pending, challenge)
    _store(request, pending)
    return challenge


def _owner(pending: PendingLogin) -> Any:
    # An unsaved instance carrying only the pk: enough to check ownership without a query.
    user_model = get_user_model()
    return user_model(pk=user_model._meta.pk.to_python(pending.user_id))
