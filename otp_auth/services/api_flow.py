"""Session-free login, enrollment and step-up, for API clients.

The HTML flow keeps its pending login in the session. An API client often has no
session, so here the pending login travels with the client as a signed *flow token*: a
random flow id, the user id, the backend that accepted the password, the flow's start
time, the chosen factor, the id of the code last sent and the user's security epoch,
signed with ``SECRET_KEY`` (``django.core.signing``) under its own salt. It lives
``LOGIN_TIMEOUT`` seconds, is spent by its first success or by a cancel (a marker in the
cache), and dies with any change to the account (``services.epoch``), so it can be
replayed neither before nor after. Every send of a flow, whichever of its tokens asks,
is judged against the flow's latest challenge (``challenges.send_in_flow``). Codes are
judged by the same services as the HTML views, so attempt counts, locks, cooldowns, send
limits and lockouts are the same rows, counters and numbers."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest

from ..conf import app_settings
from ..constants import ChallengeStatus, Purpose
from ..exceptions import (
    AccountLockedError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    RateLimitedError,
)
from ..models import Challenge, Device
from . import epoch, guard
from .challenges import (
    cancel_challenge,
    issue_challenge,
    send_in_flow,
    verify_challenge,
)
from .devices import prepare_device
from .factors import has_confirmed_factor, user_factors
from .login import confirmed_devices, notice_for

__all__ = [
    "LoginFlow",
    "cancel_login",
    "choose_factor",
    "complete_login",
    "resend_login",
    "start_enrollment",
    "start_login",
    "start_step_up",
]

FLOW_SALT = "otp_auth.api.login-flow"
MAX_FLOW_TOKEN_LENGTH = 1024


def _signer() -> signing.Signer:
    # No timestamp of its own: the flow carries its start, which a switch keeps.
    return signing.Signer(salt=FLOW_SALT)


def _spent_key(flow_id: str) -> str:
    return f"otp_auth:api-flow-spent:{flow_id}"


@dataclass(frozen=True)
class LoginFlow:
    """A pending API login: what the session holds in the HTML flow, never a secret."""

    flow_id: str
    user_id: str
    backend: str
    started_at: float
    factor: str  # a ``factors.Factor.key``: "device:<pk>", "totp:<pk>" or "recovery"
    challenge_id: str = ""  # the code last sent to a device in this flow
    epoch: int = 0  # the user's security epoch when the password was accepted
    notice: str = ""  # why the default factor could not be used (a send limit)

    @property
    def kind(self) -> str:
        """``"code"`` (sent to a device), ``"totp"`` or ``"recovery"``."""
        prefix = self.factor.partition(":")[0]
        return "code" if prefix == "device" else prefix

    @property
    def factor_pk(self) -> int | None:
        raw = self.factor.partition(":")[2]
        return int(raw) if raw.isdigit() else None

    @property
    def user(self) -> Any:
        """An unsaved user carrying only the pk: enough for ownership checks."""
        user_model = get_user_model()
        return user_model(pk=user_model._meta.pk.to_python(self.user_id))

    @property
    def token(self) -> str:
        """The signed, opaque value the client sends back with each login step."""
        return _signer().sign_object(
            {
                "n": self.flow_id,
                "u": self.user_id,
                "b": self.backend,
                "t": self.started_at,
                "f": self.factor,
                "c": self.challenge_id,
                "e": self.epoch,
                "m": self.notice,
            }
        )

    @classmethod
    def load(cls, token: object) -> LoginFlow:
        """The flow behind ``token``.

        Anything not signed here, and a spent flow, raise ``InvalidCodeError`` like an
        unknown or used challenge; a flow older than ``LOGIN_TIMEOUT`` cancels its code
        and raises ``FlowExpiredError``.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_FLOW_TOKEN_LENGTH:
            raise InvalidCodeError("unknown")
        try:
            raw = _signer().unsign_object(token)
            flow = cls(
                flow_id=str(raw["n"]),
                user_id=str(raw["u"]),
                backend=str(raw["b"]),
                started_at=float(raw["t"]),
                factor=str(raw["f"]),
                challenge_id=str(raw["c"]),
                epoch=int(raw["e"]),
                notice=str(raw.get("m", "")),
            )
        except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
            raise InvalidCodeError("unknown") from exc
        if caches[app_settings.CACHE].get(_spent_key(flow.flow_id)):
            raise InvalidCodeError("used")
        if time.time() - flow.started_at > app_settings.LOGIN_TIMEOUT or not epoch.is_current(
            flow.user_id, flow.epoch
        ):
            # Too old, or the account changed since the password was accepted.
            cancel_challenge(flow.challenge_id)
            raise FlowExpiredError()
        return flow

    def spend(self) -> None:
        """Refuse this flow from now on (its success, or a cancel)."""
        timeout = int(app_settings.LOGIN_TIMEOUT - (time.time() - self.started_at)) + 60
        caches[app_settings.CACHE].set(_spent_key(self.flow_id), True, max(timeout, 60))


def start_login(
    user: Any, *, backend: str, request: HttpRequest | None = None, exclude: str = ""
) -> tuple[LoginFlow, Challenge | None] | None:
    """Begin the second step with the user's most recently used factor.

    For a device a code is sent now; an authenticator app needs nothing sent. Returns
    ``None`` when the user has no confirmed device or app (the caller applies
    ``REQUIRE_ENROLLMENT``). Raises ``DeliveryError`` and ``RateLimitedError`` from the
    send.
    """
    # ``exclude``: a factor already passed (a sign-in code's device), not offered again.
    usable = [f for f in user_factors(user) if f.kind != "recovery" and f.key != exclude]
    if not usable:
        if has_confirmed_factor(user):
            # Factors exist but none may serve a sign-in (EMAIL_CODES_FOR): refuse rather
            # than hand out a password-only credential.
            raise DeviceError()
        return None
    flow = LoginFlow(
        flow_id=secrets.token_urlsafe(12),
        user_id=str(user.pk),
        backend=backend,
        started_at=time.time(),
        factor=usable[0].key,
        epoch=epoch.current(user),
    )
    first = usable[0]
    if first.kind != "code" or first.pk is None:  # an app: nothing to send
        return flow, None
    device = Device.objects.confirmed().get(pk=first.pk, user=user)
    try:
        challenge = issue_challenge(
            user=user, device=device, purpose=Purpose.LOGIN, request=request, flow_id=flow.flow_id
        )
    except RateLimitedError as exc:
        # The device's sends are limited: offer the other factors, as the HTML flow does.
        others = [f for f in user_factors(user) if f.key not in (first.key, exclude)]
        if isinstance(exc, AccountLockedError) or exc.retry_after is None or not others:
            raise
        fallback = next((f for f in others if f.kind != "code"), None)
        notice = notice_for(device, exc)
        if fallback is None:
            return replace(flow, notice=notice), None
        return replace(flow, factor=fallback.key, notice=notice), None
    return replace(flow, challenge_id=challenge.public_id), challenge


def complete_login(
    token: object, code: object, *, request: HttpRequest | None = None
) -> tuple[LoginFlow, Any, Challenge | None]:
    """Check ``code`` with the flow's factor and spend the flow.

    Returns the flow, the user (loaded) and the verified challenge (``None`` for an app or
    a recovery code). Raises like ``verify_challenge``, ``verify_totp``,
    ``use_recovery_code`` and ``LoginFlow.load``.
    """
    from .recovery import use_recovery_code
    from .totp import verify_totp

    flow = LoginFlow.load(token)
    challenge = None
    if flow.kind == "totp":
        user = verify_totp(flow.user, code, device_id=flow.factor_pk, request=request).user
    elif flow.kind == "recovery":
        user, _remaining = use_recovery_code(flow.user, code, request=request)
    else:
        challenge = verify_challenge(
            flow.challenge_id, code, purpose=Purpose.LOGIN, user=flow.user, request=request
        )
        user = challenge.user
    flow.spend()
    if challenge is None:
        # A code sent earlier in this flow must not outlive it.
        cancel_challenge(flow.challenge_id)
    return flow, user, challenge


def resend_login(
    token: object, *, request: HttpRequest | None = None
) -> tuple[LoginFlow, Challenge]:
    """A new code for the flow's challenge, under the cooldown and resend limit."""
    flow = LoginFlow.load(token)
    if flow.kind != "code" or not flow.challenge_id:
        raise DeviceError()  # nothing was sent: an app or a recovery code
    challenge = send_in_flow(flow.flow_id, user=flow.user, request=request)
    return replace(flow, challenge_id=challenge.public_id), challenge


def choose_factor(
    token: object, key: object, *, request: HttpRequest | None = None
) -> tuple[LoginFlow, Challenge | None]:
    """Switch the flow to another factor (a ``Factor.key`` from the login answer).

    Like ``otp_auth.services.login.choose_factor``: an app or recovery codes send
    nothing; another device gets a code under the rules of a resend (cooldown, send
    budget, wrong attempts carried over); back to a device whose code is still pending,
    nothing is sent. Raises ``DeviceError`` for a factor the user does not have.
    """
    flow = LoginFlow.load(token)
    factor = next((f for f in user_factors(flow.user_id) if f.key == key), None)
    if factor is None:
        raise DeviceError()
    current = (
        Challenge.objects.filter(public_id=flow.challenge_id, user_id=flow.user.pk).first()
        if flow.challenge_id
        else None
    )
    if factor.kind != "code":
        return replace(flow, factor=factor.key), None
    if current is not None and (current.device_id, current.status) == (
        factor.pk,
        ChallengeStatus.PENDING,
    ):
        return replace(flow, factor=factor.key), current
    device = Device.objects.confirmed().select_related("user").get(pk=factor.pk or 0)
    challenge = send_in_flow(flow.flow_id, user=device.user, device=device, request=request)
    return replace(flow, factor=factor.key, challenge_id=challenge.public_id), challenge


def cancel_login(token: object) -> None:
    """Abandon the flow: spent, and its code stops working. Silent for any token."""
    try:
        flow = LoginFlow.load(token)
    except (InvalidCodeError, FlowExpiredError):
        return  # Nothing to cancel, or already cancelled by the expiry.
    flow.spend()
    cancel_challenge(flow.challenge_id)


def _cancel_pending(user: Any, purpose: str) -> None:
    # One open code per user and purpose: a new one supersedes the older ones.
    Challenge.objects.pending().filter(user=user, purpose=purpose).update(
        status=ChallengeStatus.CANCELLED, code_hash=""
    )


def start_enrollment(
    user: Any,
    *,
    channel: str,
    destination: str,
    name: str = "",
    request: HttpRequest | None = None,
) -> tuple[Device, Challenge]:
    """Create (or reuse) an unconfirmed device and send it an enrollment code; confirm it
    with ``otp_auth.services.devices.confirm_enrollment``."""
    device = prepare_device(user, channel=channel, destination=destination, name=name)
    _cancel_pending(user, Purpose.ENROLLMENT)
    challenge = issue_challenge(
        user=user, device=device, purpose=Purpose.ENROLLMENT, channel=channel, request=request
    )
    return device, challenge


def start_step_up(
    user: Any, *, device_id: int | None = None, request: HttpRequest | None = None
) -> Challenge:
    """Send a step-up code (purpose ``step_up``) to a confirmed device of ``user``: the
    most recently used one, or ``device_id``. Its id and code are then passed with the
    sensitive request, which checks them with ``verify_challenge``."""
    devices = [d for d in confirmed_devices(user) if guard.serves_purpose(d, Purpose.STEP_UP)]
    if device_id is not None:
        devices = [d for d in devices if d.pk == device_id]
    if not devices:
        raise DeviceError()
    _cancel_pending(user, Purpose.STEP_UP)
    return issue_challenge(user=user, device=devices[0], purpose=Purpose.STEP_UP, request=request)
