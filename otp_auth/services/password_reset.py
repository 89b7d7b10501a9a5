"""Password reset by one-time code: request, code, second factor, new password.

The same four steps serve the HTML pages and the API:

1. ``request_reset`` takes a username, email address or phone number. The answer is the
   same whether or not an account matches: both paths run the same queries and counters
   and write one ``PasswordReset`` row, and the code itself is sent by ``deliver_after``
   once the response has gone out, so neither a slow provider nor a failed send tells
   who has an account.
2. ``verify_reset`` turns an accepted code into a grant: a new random secret, held by the
   session or the API client, valid ``PASSWORD_RESET_GRANT_TTL`` seconds. The flow's id
   stops working.
3. ``send_second_code`` and the ``second_factor`` of ``complete_reset``: with
   ``PASSWORD_RESET_SECOND_FACTOR`` (the default), a second proof independent of the
   device that got the reset code (an authenticator app, a recovery code or a code sent
   to another device), as NIST SP 800-63B-4 §4.2.2.2 asks of accounts with two factors.
4. ``complete_reset`` sets a password that passes Django's validators. Then the user's
   security epoch advances (``services.epoch``): every session, pending login, flow
   token, DRF token, remembered browser and other reset of the user ends, pending codes
   are cancelled, nobody is logged in, and the user is told.

Limits: requests per account and per client address (``reset_per_account``,
``reset_per_ip``) and refused reset codes per account (``reset_failures_per_account``),
in the rate-limit cache every other limit uses; per-challenge attempts and refused codes
per address as for any code. A reset code never counts toward the user's lockout, and a
request never locks an account or disables a factor: strangers can ask for resets.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.contrib.auth.password_validation import validate_password
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponseBase
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..constants import ChallengeStatus, Channel, Purpose
from ..exceptions import (
    ChallengeError,
    ChallengeLockedError,
    DeviceError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    StepUpRequiredError,
)
from ..models import AuditEvent, Challenge, Device, PasswordReset
from ..providers import OTPMessage, provider_for_channel
from ..signals import challenge_failed, password_reset_completed
from ..utils import client_ip, user_agent
from . import accounts, audit, epoch, guard, limits, notify, trusted
from .challenges import (
    cancel_challenge,
    ensure_resendable,
    issue_challenge,
    resend_challenge,
    verify_challenge,
)
from .factors import Factor, user_factors

__all__ = [
    "NoSecondFactorError",
    "ResetGrantError",
    "ResetRequest",
    "SecondFactorRequiredError",
    "complete_reset",
    "deliver_after",
    "granted_reset",
    "needs_second_factor",
    "request_reset",
    "second_factors",
    "send_second_code",
    "verify_reset",
]

logger = logging.getLogger("otp_auth")

MAX_IDENTIFIER_LENGTH = 254
MAX_GRANT_LENGTH = 128
SUBJECT_SALT = "otp_auth.password-reset.subject"
# More than one active account behind what was typed (a shared email address or phone):
# nothing is sent, since a code must be bound to one account.
MAX_MATCHES = 5

Status = PasswordReset.Status


class ResetGrantError(ChallengeError):
    """The grant is unknown, expired or already used: the reset starts again."""

    code = "reset_expired"
    default_message = _("This password reset has expired or was already used. Please start again.")


class SecondFactorRequiredError(StepUpRequiredError):
    """The account has a second factor besides the device that got the reset code, and
    none was given."""

    code = "second_factor_required"
    default_message = _(
        "Confirm it is you with a second factor as well: your authenticator app, a "
        "recovery code or a code sent to another of your devices."
    )


class NoSecondFactorError(StepUpRequiredError):
    """The account has no factor independent of the device that got the reset code."""

    code = "second_factor_unavailable"
    default_message = _(
        "This account has no second way to confirm it is you, so its password cannot be "
        "reset here. Please contact support."
    )


def _now() -> datetime:
    """The one clock seam, so tests can move time."""
    return timezone.now()


def _digest(grant: str) -> str:
    return hashlib.sha256(grant.encode()).hexdigest()


# Step 1: the request ------------------------------------------------------------------


@dataclass(frozen=True)
class ResetRequest:
    """A recorded request. ``deliver`` sends the code (it does nothing when no account
    matched, a limit refused the request, or the account has no device for it): run it
    after the response with ``deliver_after``, or directly outside a request."""

    reset: PasswordReset
    deliver: Callable[[], None]


def _subject(user: Any, text: str) -> str:
    return accounts.limit_subject(user, text, salt=SUBJECT_SALT)


def _supersede(subject: str) -> None:
    """One pending reset code per account: a new request cancels the older ones."""
    older = PasswordReset.objects.filter(subject=subject, status=Status.PENDING)
    Challenge.objects.pending().filter(pk__in=older.values("challenge_id")).update(
        status=ChallengeStatus.CANCELLED, code_hash=""
    )
    older.update(status=Status.CANCELLED)


def request_reset(
    identifier: object, *, channel: object = "", request: HttpRequest | None = None
) -> ResetRequest:
    """Record a reset request for the account behind ``identifier`` (a username, email
    address or phone number) and prepare its code for ``channel`` (``""``: the most
    recently used device).

    Never raises for an unknown account, an ambiguous identifier, an account without a
    usable device or a request over ``reset_per_account`` / ``reset_per_ip``: the caller
    answers all of them alike. Every request is audited (``reset_requested``, with the
    reason kept server-side).
    """
    text = accounts.identifier(identifier)
    wanted = channel if isinstance(channel, str) and channel in app_settings.CHANNELS else ""
    phone = accounts.as_phone(text)
    users = accounts.matching_users(text, phone, limit=MAX_MATCHES, usable_password=True)
    user = users[0] if len(users) == 1 else None
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    # For no account the very same statement runs, with a primary key no user has (0
    # also reads as a UUID or a string key).
    owner = {"user_id": user.pk if user is not None else 0}
    devices = list(Device.objects.confirmed().filter(**owner).order_by(*ordering))
    device, chosen = accounts.pick_device(devices, text, phone, wanted)
    subject = _subject(user, text)
    ip = client_ip(request)
    # The address pays for a send on every request, account or not (the reset code's own
    # send leaves the address out: see limits.send_subjects).
    by_ip = [("reset_per_ip", f"ip:{ip}"), ("send_per_ip", f"ip:{ip}")] if ip else []
    counted = [("reset_per_account", subject), *by_ip]
    limited: RateLimitedError | None = None
    try:
        limits.take_all(counted)
    except RateLimitedError as exc:
        limited = exc
    else:
        _supersede(subject)
    now = _now()
    lifetime = max(app_settings.PASSWORD_RESET_PHONE_TTL, app_settings.PASSWORD_RESET_EMAIL_TTL)
    reset = PasswordReset.objects.create(
        user=user,
        subject=subject,
        channel=wanted,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        ip_address=ip,
        user_agent=user_agent(request),
    )
    reason = accounts.request_reason(
        limited, user, users, device, request=request, purpose=Purpose.PASSWORD_RESET
    )
    audit.log(
        AuditEvent.Kind.RESET_REQUESTED,
        user=user,
        request=request,
        purpose=Purpose.PASSWORD_RESET,
        channel=chosen or wanted,
        destination=device.masked_destination if device is not None else "",
        reason=reason,
    )
    if reason != "code":
        return ResetRequest(reset, _nothing)
    assert user is not None and device is not None

    def deliver() -> None:
        _send_reset_code(reset, user, device, chosen, request)

    return ResetRequest(reset, deliver)


def _nothing() -> None:
    return None


def _send_reset_code(
    reset: PasswordReset, user: Any, device: Device, channel: str, request: HttpRequest | None
) -> None:
    try:
        challenge = issue_challenge(
            user=user,
            device=device,
            purpose=Purpose.PASSWORD_RESET,
            channel=channel,
            request=request,
        )
    except OTPAuthError:
        return  # audited where it was raised: a failed send, a send limit, a lock
    linked = PasswordReset.objects.filter(pk=reset.pk, status=Status.PENDING).update(
        challenge=challenge
    )
    if not linked:  # a newer request superseded this one while the code went out
        cancel_challenge(challenge.public_id)


def deliver_after(response: HttpResponseBase, deliver: Callable[[], None]) -> HttpResponseBase:
    """Run ``deliver`` when the server closes ``response``, after its body was sent.

    WSGI and ASGI servers (and Django's test client) call ``close()`` once the response
    is out, so the time a request takes never includes a provider call, and a request
    for an unknown account answers as fast as one for a real account. Errors are logged,
    never raised: the response is already gone.
    """
    close = response.close

    def deliver_then_close() -> None:
        try:
            deliver()
        except Exception:
            logger.exception("otp_auth: sending a password reset code failed")
        finally:
            close()

    response.close = deliver_then_close  # type: ignore[method-assign]
    return response


# Step 2: the code ---------------------------------------------------------------------


def _flow(reset_id: object) -> PasswordReset | None:
    if not isinstance(reset_id, str) or not reset_id or len(reset_id) > 64:
        return None
    return (
        PasswordReset.objects.select_related("challenge", "user")
        .filter(public_id=reset_id, status=Status.PENDING)
        .first()
    )


def _failure_budget(reset: PasswordReset, request: HttpRequest | None) -> limits.Reservation:
    try:
        return limits.take("reset_failures_per_account", reset.subject)
    except RateLimitedError as exc:
        raise guard.refused(
            exc, user=reset.user, request=request, purpose=Purpose.PASSWORD_RESET
        ) from None


def verify_reset(
    reset_id: object, code: object, *, request: HttpRequest | None = None
) -> tuple[PasswordReset, str]:
    """Check the code of flow ``reset_id``; on success return the flow and its grant.

    The grant is returned once and only its hash is stored. Raises ``InvalidCodeError``
    (one public answer for wrong, expired, used and unknown, and for a flow that never
    had an account), ``ChallengeLockedError`` after ``MAX_ATTEMPTS`` wrong codes, and
    ``RateLimitedError`` over ``reset_failures_per_account`` or
    ``verify_failures_per_ip``.
    """
    reset = _flow(reset_id)
    if reset is None:
        guard.before_verify(request)  # a refused code from this address, like any other
        audit.log(
            AuditEvent.Kind.FAILED,
            request=request,
            purpose=Purpose.PASSWORD_RESET,
            reason="unknown",
        )
        raise InvalidCodeError("unknown")
    budget = _failure_budget(reset, request)
    sent = reset.challenge
    if (
        sent is None
        or reset.user is None
        or sent.status != ChallengeStatus.PENDING
        or sent.is_expired(_now())
    ):
        # No code to check any more: from here the flow behaves like one that never had
        # an account, so a stranger cannot tell them apart by what a wrong code gets.
        _refuse_without_code(reset, request, spent=sent.attempts if sent is not None else 0)
    try:
        challenge = verify_challenge(
            sent.public_id,
            code,
            purpose=Purpose.PASSWORD_RESET,
            user=reset.user,
            request=request,
            counts_toward_lockout=False,
        )
    except RateLimitedError as exc:
        budget.release()  # no code was judged
        if exc.limit in ("account_locked", "verify_delay"):
            # The user's lock, from failed logins: a flow without an account never shows
            # it, so neither may this one.
            raise InvalidCodeError("locked") from None
        raise
    except InvalidCodeError as exc:
        if exc.reason == "provider_error":
            budget.release()
        raise
    budget.release()  # an accepted code is not a failure
    grant = secrets.token_urlsafe(32)
    now = _now()
    expires = now + timedelta(seconds=app_settings.PASSWORD_RESET_GRANT_TTL)
    updated = PasswordReset.objects.filter(pk=reset.pk, status=Status.PENDING).update(
        status=Status.VERIFIED,
        verified_at=now,
        grant_hash=_digest(grant),
        grant_expires_at=expires,
        # The grant vouches for the account as it is now: any change to it (another
        # reset, a password or factor change) ends the grant (``services.epoch``).
        epoch=epoch.current(reset.user_id),
    )
    if not updated:  # superseded by a newer request while the code was checked
        raise InvalidCodeError("used")
    reset.status, reset.verified_at, reset.grant_expires_at = Status.VERIFIED, now, expires
    reset.challenge = challenge
    return reset, grant


def _refuse_without_code(
    reset: PasswordReset, request: HttpRequest | None, *, spent: int
) -> NoReturn:
    """Refuse any code for a flow that has none to check (no account, nothing sent, the
    code expired or locked) as a pending code refuses a wrong one: counted per address,
    audited, and locked once ``spent`` (wrong codes its challenge took) plus those
    counted here reach ``MAX_ATTEMPTS``. After the flow's own lifetime, only expired."""
    guard.before_verify(request, user=reset.user)
    now = _now()
    with transaction.atomic():
        row = PasswordReset.objects.select_for_update().get(pk=reset.pk)
        error: ChallengeError
        if row.expires_at <= now:
            error = InvalidCodeError("expired")
        elif spent + row.attempts >= app_settings.MAX_ATTEMPTS:
            error = ChallengeLockedError()
        else:
            row.attempts += 1
            row.save(update_fields=["attempts"])
            if spent + row.attempts >= app_settings.MAX_ATTEMPTS:
                error = ChallengeLockedError()
            else:
                error = InvalidCodeError("no_code")
    reason = getattr(error, "reason", error.code)
    challenge_failed.send(sender=Challenge, challenge=None, reason=reason, request=request)
    audit.log(
        AuditEvent.Kind.FAILED,
        user=reset.user,
        request=request,
        purpose=Purpose.PASSWORD_RESET,
        channel=reset.channel,
        reason=reason,
    )
    raise error


# Step 3: the grant and the second factor ------------------------------------------------


def _granted(grant: object, *, lock: bool = False) -> PasswordReset:
    if not isinstance(grant, str) or not grant or len(grant) > MAX_GRANT_LENGTH:
        raise ResetGrantError()
    qs = PasswordReset.objects.all()
    if lock:
        if connection.features.has_select_for_update_of:
            qs = qs.select_for_update(of=("self",))
        else:
            qs = qs.select_for_update()
    else:
        qs = qs.select_related("user", "challenge", "second_challenge")
    reset = qs.filter(grant_hash=_digest(grant)).first()
    if (
        reset is None
        or reset.status != Status.VERIFIED
        or reset.user_id is None
        or reset.grant_expires_at is None
        or reset.grant_expires_at <= _now()
        or not epoch.is_current(reset.user_id, reset.epoch)
    ):
        raise ResetGrantError()
    return reset


def granted_reset(grant: object) -> PasswordReset:
    """The verified flow behind ``grant`` (with its user loaded); ``ResetGrantError``
    when it is unknown, used or past ``PASSWORD_RESET_GRANT_TTL``."""
    return _granted(grant)


def second_factors(reset: PasswordReset) -> list[Factor]:
    """The user's factors that can back the reset code: every confirmed factor except
    the device that received it."""
    used = reset.challenge.device_id if reset.challenge is not None else None
    return [f for f in user_factors(reset.user_id) if not (f.kind == "code" and f.pk == used)]


def needs_second_factor(reset: PasswordReset) -> bool:
    """True while ``PASSWORD_RESET_SECOND_FACTOR`` asks for a second factor and none
    has been given in this flow."""
    return app_settings.PASSWORD_RESET_SECOND_FACTOR and not reset.second_factor


def _factor(reset: PasswordReset, key: object) -> Factor:
    factor = next((f for f in second_factors(reset) if f.key == key), None)
    if factor is None:
        raise DeviceError()
    return factor


def send_second_code(
    grant: object, factor_key: object, *, request: HttpRequest | None = None
) -> Challenge:
    """Send a code to another device of the user (``"device:<pk>"`` from
    ``second_factors``), for the second factor.

    Asking again for the same device is a resend; another device replaces the code
    under the same rules (cooldown, ``MAX_RESENDS``, wrong attempts carried over).
    Raises ``DeviceError`` for a factor that is not one of ``second_factors``.
    """
    reset = _granted(grant)
    factor = _factor(reset, factor_key)
    if factor.kind != "code" or factor.pk is None:
        raise DeviceError()  # apps and recovery codes need nothing sent
    device = Device.objects.confirmed().select_related("user").get(pk=factor.pk)
    current = reset.second_challenge
    if current is not None:
        if current.status == ChallengeStatus.LOCKED:
            raise ChallengeLockedError()
        if current.status == ChallengeStatus.PENDING:
            if current.device_id == device.pk:
                return resend_challenge(current.public_id, user=reset.user, request=request)
            ensure_resendable(current)
            cancel_challenge(current.public_id)
    challenge = issue_challenge(
        user=device.user,
        device=device,
        purpose=Purpose.PASSWORD_RESET,
        request=request,
        replaces=current,
    )
    PasswordReset.objects.filter(pk=reset.pk).update(second_challenge=challenge)
    return challenge


def _check_second_factor(
    reset: PasswordReset, key: object, code: object, request: HttpRequest | None
) -> str:
    """Judge the second factor; returns its kind. Like a login's second step, refused
    codes here count toward the user's lockout: whoever gets here proved one factor."""
    from .recovery import use_recovery_code
    from .totp import verify_totp

    factor = _factor(reset, key)
    if factor.kind == "totp":
        verify_totp(reset.user, code, device_id=factor.pk, request=request)
    elif factor.kind == "recovery":
        use_recovery_code(reset.user, code, request=request)
    else:
        sent = reset.second_challenge
        if sent is None or sent.device_id != factor.pk:
            raise InvalidCodeError("unknown")
        verify_challenge(
            sent.public_id, code, purpose=Purpose.PASSWORD_RESET, user=reset.user, request=request
        )
    return factor.key if factor.kind == "code" else factor.kind


# Step 4: the new password ---------------------------------------------------------------


def complete_reset(
    grant: object,
    new_password: str,
    *,
    second_factor: tuple[object, object] | None = None,
    request: HttpRequest | None = None,
) -> Any:
    """Set ``new_password`` for the user of ``grant``; returns the user, who is not
    logged in anywhere afterwards.

    ``second_factor`` is ``(factor key, code)``, needed while ``needs_second_factor``.
    Raises ``ResetGrantError``, Django's ``ValidationError`` (from the password
    validators, before any code is used), ``NoSecondFactorError``,
    ``SecondFactorRequiredError``, and what checking the second factor raises. Of two
    completions at once, one wins; the other gets ``ResetGrantError``.
    """
    reset = _granted(grant)
    user: Any = reset.user
    validate_password(new_password, user)
    if needs_second_factor(reset):
        if not second_factors(reset):
            raise NoSecondFactorError()
        if second_factor is None or not second_factor[1]:
            raise SecondFactorRequiredError()
        passed = _check_second_factor(reset, second_factor[0], second_factor[1], request)
        PasswordReset.objects.filter(pk=reset.pk, status=Status.VERIFIED).update(
            second_factor=passed
        )
    now = _now()
    with transaction.atomic():
        row = _granted(grant, lock=True)
        if needs_second_factor(row):
            raise SecondFactorRequiredError()
        user.set_password(new_password)
        user.save(update_fields=["password"])
        row.status, row.completed_at, row.grant_hash = Status.COMPLETED, now, ""
        row.save(update_fields=["status", "completed_at", "grant_hash"])
        _revoke_everything(user, keep=row)
        audit.log(
            AuditEvent.Kind.RESET_COMPLETED,
            user=user,
            request=request,
            purpose=Purpose.PASSWORD_RESET,
            reason=row.second_factor or "code_only",
        )
    _notify(user, request)
    password_reset_completed.send(sender=PasswordReset, user=user, reset=row, request=request)
    return user


def _revoke_everything(user: Any, *, keep: PasswordReset) -> None:
    """End every session and credential of ``user``, and every code and reset still
    open. Django ends logged-in sessions itself (their password hash is stale); the
    revocation also ends sessions of backends that keep no hash."""
    PasswordReset.objects.filter(user=user, status__in=[Status.PENDING, Status.VERIFIED]).exclude(
        pk=keep.pk
    ).update(status=Status.CANCELLED, grant_hash="")
    Challenge.objects.pending().filter(user=user).update(
        status=ChallengeStatus.CANCELLED, code_hash=""
    )
    # Every session, pending login, flow token, DRF token, remembered browser and
    # step-up of the user ends; nothing is kept, not even this request's session.
    epoch.advance(user, reason=epoch.Reason.PASSWORD_RESET, keep_current=False)
    trusted.forget_all(user)


def _notify(user: Any, request: HttpRequest | None) -> None:
    """Email the user's notification addresses; an account with none gets an SMS on its
    confirmed phones instead, so that every reset is heard of."""
    if notify.notify(user, "password_reset", request=request):
        return
    if not app_settings.NOTIFY_BY_EMAIL or notify.notification_addresses(user):
        return
    if Channel.SMS not in app_settings.CHANNELS:
        return
    provider = provider_for_channel(Channel.SMS)
    if provider.hosted_verify:
        return  # a hosted-verify service sends codes only
    text = render_to_string(
        "otp_auth/notifications/password_reset_sms.txt",
        {"site_name": app_settings.SITE_NAME, "when": _now()},
    ).strip()
    for device in Device.objects.confirmed().for_user(user).exclude(phone_number=""):
        if not device.serves(Channel.SMS):
            continue
        message = OTPMessage(
            destination=device.phone_number,
            text=text,
            channel=Channel.SMS,
            purpose=Purpose.PASSWORD_RESET,
            metadata={"notification": "password_reset"},
        )
        try:
            provider.send(message)
        except Exception:
            logger.exception(
                "otp_auth: could not send the password_reset notice to device pk=%s", device.pk
            )
