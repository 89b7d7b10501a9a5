"""Issue, verify, resend and cancel challenges: the only code that changes their state.

Verification runs in a transaction with the challenge row locked (``SELECT ... FOR
UPDATE``), so two correct submissions at once give exactly one success and N wrong ones
add exactly N failures. State changes are committed before an error is raised, so a
refused code still counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from ..conf import app_settings
from ..constants import ChallengeStatus, Purpose
from ..crypto import generate_code, generate_public_id, hash_code, normalize_code, verify_code
from ..exceptions import (
    ChallengeLockedError,
    CountryNotAllowedError,
    DeliveryError,
    DeviceError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    ResendLimitError,
    ResendTooSoonError,
)
from ..models import AuditEvent, Challenge, Device
from ..providers import get_provider, provider_for_channel
from ..providers.routing import Attempt
from ..signals import challenge_failed, challenge_issued, challenge_locked, challenge_verified
from ..utils import client_ip, user_agent
from . import audit, delivery, guard, lockout

logger = logging.getLogger("otp_auth")

__all__ = [
    "cancel_challenge",
    "ensure_resendable",
    "issue_challenge",
    "resend_available_in",
    "resend_challenge",
    "verify_challenge",
]


def _now() -> datetime:
    """The one clock seam, so tests can move time."""
    return timezone.now()


def _locked_challenge(public_id: object) -> Challenge | None:
    if not isinstance(public_id, str) or not public_id or len(public_id) > 64:
        return None
    qs = Challenge.objects.select_related("user")
    # Lock only the challenge row: joined user rows stay unlocked where the database can
    # say so; elsewhere (SQLite) the whole database is locked by the write anyway.
    if connection.features.has_select_for_update_of:
        qs = qs.select_for_update(of=("self",))
    else:
        qs = qs.select_for_update()
    return qs.filter(public_id=public_id).first()


def _deliver(challenge: Challenge, code: str | None, destination: str) -> Sequence[Attempt]:
    """Send, and return the attempts to record once the challenge row exists."""
    delivery.check_destination_allowed(challenge.channel, destination)
    provider = get_provider(challenge.provider_alias)
    if provider.hosted_verify:
        result = delivery.start_hosted(challenge, provider, destination)
    else:
        assert code is not None
        result = delivery.send_code(challenge, provider, code, destination)
    challenge.provider_reference = result.reference[:128]
    challenge.delivery_status = result.status[:32]
    return result.attempts


def issue_challenge(
    *,
    user: Any,
    device: Device,
    purpose: str,
    channel: str | None = None,
    request: HttpRequest | None = None,
    replaces: Challenge | None = None,
) -> Challenge:
    """Create a challenge for ``device`` and deliver its code.

    The code is sent before the row is written, so the row is written once, with the
    delivery outcome. Raises ``DeviceError`` for a device that cannot be used and
    ``DeliveryError`` when the provider fails (the challenge is then stored as
    ``send_failed`` for the audit trail and accepts no code).

    ``replaces`` is the challenge this one takes over from (another device in the same
    login): its wrong attempts and sends carry over, so switching never buys guesses.
    """
    channel = channel or device.default_channel
    if (
        device.user_id != user.pk
        or channel not in app_settings.CHANNELS
        or not device.serves(channel)
        or (purpose != Purpose.ENROLLMENT and not device.confirmed)
    ):
        raise DeviceError()
    guard.before_send(user=user, device=device, channel=channel, purpose=purpose, request=request)
    provider = provider_for_channel(channel)
    now = _now()
    challenge = Challenge(
        public_id=generate_public_id(),
        user=user,
        device=device,
        purpose=purpose,
        channel=channel,
        provider_alias=provider.alias,
        destination_masked=device.masked_destination,
        max_attempts=app_settings.MAX_ATTEMPTS,
        attempts=replaces.attempts if replaces else 0,
        created_at=now,
        last_sent_at=now,
        send_count=replaces.send_count + 1 if replaces else 1,
        expires_at=now + timedelta(seconds=app_settings.code_ttl(purpose, channel)),
        ip_address=client_ip(request),
        user_agent=user_agent(request),
    )
    code = None
    if not provider.hosted_verify:
        code = generate_code()
        challenge.code_hash = hash_code(code, challenge_id=challenge.public_id, purpose=purpose)
    try:
        attempts = _deliver(challenge, code, device.destination_for(channel))
    except DeliveryError as exc:
        challenge.status = ChallengeStatus.SEND_FAILED
        challenge.code_hash = ""
        challenge.failure_reason = exc.code
        challenge.save()
        delivery.record_attempts(challenge, exc.attempts)
        _audit_send(challenge, exc, request=request, first=True)
        raise
    challenge.save()
    delivery.record_attempts(challenge, attempts)
    _audit_send(challenge, None, request=request, first=True)
    challenge_issued.send(sender=Challenge, challenge=challenge, request=request, resend=False)
    return challenge


def verify_challenge(
    public_id: object,
    code: object,
    *,
    purpose: str,
    user: Any = None,
    request: HttpRequest | None = None,
    counts_toward_lockout: bool = True,
) -> Challenge:
    """Check ``code`` against the challenge and consume it on success.

    ``user``, when given, must own the challenge. Wrong, expired, used and unknown
    challenges all raise ``InvalidCodeError`` (one public message); the attempt that
    reaches ``max_attempts`` and every later one raise ``ChallengeLockedError``.
    Returns the verified challenge, with ``challenge.user`` loaded.

    ``counts_toward_lockout=False`` is for codes that anyone may have sent to a user (a
    password reset): a lock in force still refuses them, but their outcome neither adds
    to nor clears the user's refused codes in a row, so strangers cannot lock an account.
    """
    normalized = normalize_code(code)
    now = _now()
    error: OTPAuthError | None = None
    locked_now = False
    lock_started: str | None = None
    reservation = guard.before_verify(request, user=user)
    with transaction.atomic():
        challenge = _locked_challenge(public_id)
        if (
            challenge is None
            or challenge.purpose != purpose
            or (user is not None and challenge.user_id != user.pk)
        ):
            challenge = None
            error = InvalidCodeError("unknown")
        elif challenge.status == ChallengeStatus.LOCKED:
            error = ChallengeLockedError()
        elif challenge.status != ChallengeStatus.PENDING:
            reason = "used" if challenge.status == ChallengeStatus.VERIFIED else challenge.status
            error = InvalidCodeError(reason)
        elif challenge.is_expired(now):
            challenge.status = ChallengeStatus.EXPIRED
            challenge.save(update_fields=["status"])
            error = InvalidCodeError("expired")
        elif (error := lockout.refusal(state := lockout.acquire(challenge.user_id), now)) is None:
            # The user's Lockout row stays locked to the end: parallel checks of any of the
            # user's challenges take their turn against one budget of refused codes.
            matched = normalized is not None and _code_matches(challenge, normalized)
            if matched is None:
                # The hosted-verify vendor could not judge the code: refuse it without
                # counting an attempt, so an outage cannot lock anyone out.
                error = InvalidCodeError("provider_error")
            elif matched:
                challenge.status = ChallengeStatus.VERIFIED
                challenge.consumed_at = now
                challenge.code_hash = ""
                challenge.save(update_fields=["status", "consumed_at", "code_hash"])
                if challenge.device_id:
                    Device.objects.filter(pk=challenge.device_id).update(last_used_at=now)
                if counts_toward_lockout:
                    lockout.record_success(state)
            else:
                if counts_toward_lockout:
                    lock_started = lockout.record_failure(state, now)
                challenge.attempts += 1
                if challenge.attempts >= challenge.max_attempts:
                    challenge.status = ChallengeStatus.LOCKED
                    challenge.code_hash = ""
                    locked_now = True
                    error = ChallengeLockedError()
                else:
                    error = InvalidCodeError("malformed" if normalized is None else "wrong")
                challenge.save(update_fields=["attempts", "status", "code_hash"])
    if error is None:
        assert challenge is not None
        reservation.release()  # an accepted code is not a failure from this address
        audit.record_challenge(challenge, [AuditEvent.Kind.VERIFIED], request=request)
        challenge_verified.send(sender=Challenge, challenge=challenge, request=request)
        return challenge
    reason = getattr(error, "reason", error.code)
    if isinstance(error, RateLimitedError) or reason == "provider_error":
        reservation.release()  # no code was judged
    if isinstance(error, RateLimitedError):
        raise guard.refused(error, user=user, challenge=challenge, request=request)
    challenge_failed.send(sender=Challenge, challenge=challenge, reason=reason, request=request)
    _audit_refusal(challenge, reason, locked_now, lock_started, user=user, request=request)
    if locked_now:
        challenge_locked.send(sender=Challenge, challenge=challenge, request=request)
    if lock_started:
        assert challenge is not None
        lockout.announce(state, lock_started, user=challenge.user, request=request)
    raise error


def _audit_send(
    challenge: Challenge,
    error: DeliveryError | None,
    *,
    request: HttpRequest | None,
    first: bool,
) -> None:
    # One row per send: "code_sent" (first send or "resend") or "send_failed". The
    # challenge itself is the record of its issue.
    if error is None:
        kinds: list[Any] = [(AuditEvent.Kind.CODE_SENT, "" if first else "resend")]
    else:
        kinds = [(AuditEvent.Kind.SEND_FAILED, error.code)]
    rows = audit.record_challenge(challenge, kinds, request=request)
    if isinstance(error, CountryNotAllowedError):
        # Refused before any provider call (the country allow-list): blocked, not failed.
        AuditEvent.objects.filter(pk=rows[-1].pk).update(outcome=AuditEvent.Outcome.BLOCKED)


def _audit_refusal(
    challenge: Challenge | None,
    reason: str,
    locked_now: bool,
    lock_started: str | None,
    *,
    user: Any,
    request: HttpRequest | None,
) -> None:
    kind = AuditEvent.Kind.EXPIRED if reason == "expired" else AuditEvent.Kind.FAILED
    if challenge is None:
        audit.log(kind, user=user, request=request, reason=reason)
        return
    kinds: list[Any] = [(kind, reason)]
    if locked_now:
        kinds.append((AuditEvent.Kind.CHALLENGE_LOCKED, "max_attempts"))
    if lock_started:
        kinds.append((lock_started, "consecutive_failures"))
    audit.record_challenge(challenge, kinds, request=request)


def _code_matches(challenge: Challenge, code: str) -> bool | None:
    """True or False; ``None`` when a hosted-verify vendor could not answer."""
    provider = get_provider(challenge.provider_alias)
    if provider.hosted_verify:
        destination = (
            challenge.device.destination_for(challenge.channel) if challenge.device else ""
        )
        try:
            return bool(provider.check(challenge.provider_reference, destination, code))
        except DeliveryError as exc:
            logger.warning(
                "otp_auth: hosted check failed for challenge pk=%s via %r: %s",
                challenge.pk,
                provider.alias,
                exc,
            )
            return None
    return verify_code(
        code, challenge.code_hash, challenge_id=challenge.public_id, purpose=challenge.purpose
    )


def ensure_resendable(challenge: Challenge) -> None:
    """Raise unless a new code may go out for ``challenge`` now, to its device or another:
    ``ChallengeLockedError``, ``ResendLimitError`` past ``MAX_RESENDS``, or
    ``ResendTooSoonError`` inside the cooldown. Switching device is a resend too."""
    if challenge.status == ChallengeStatus.LOCKED:
        raise ChallengeLockedError()
    if challenge.send_count > app_settings.MAX_RESENDS:
        raise ResendLimitError()
    wait = resend_available_in(challenge)
    if wait:
        raise ResendTooSoonError(wait)


def resend_available_in(challenge: Challenge) -> int:
    """Whole seconds until ``challenge`` may be resent (0 when it may be now)."""
    if challenge.last_sent_at is None:
        return 0
    ready = challenge.last_sent_at + timedelta(seconds=app_settings.RESEND_COOLDOWN)
    return max(math.ceil((ready - _now()).total_seconds()), 0)


def resend_challenge(
    public_id: object, *, user: Any, request: HttpRequest | None = None
) -> Challenge:
    """Send a new code for the same challenge; the previous code stops working.

    Wrong-attempt counts carry over: a resend never buys more guesses. Raises
    ``ResendTooSoonError`` inside the cooldown and ``ResendLimitError`` past
    ``MAX_RESENDS``.
    """
    now = _now()
    with transaction.atomic():
        challenge = _locked_challenge(public_id)
        if challenge is None or challenge.user_id != user.pk:
            raise InvalidCodeError("unknown")
        if challenge.status not in (ChallengeStatus.LOCKED, ChallengeStatus.PENDING):
            raise InvalidCodeError(challenge.status)
        ensure_resendable(challenge)
        blocked = None
        if challenge.device is not None:
            blocked = guard.send_refusal(
                user=user,
                device=challenge.device,
                channel=challenge.channel,
                request=request,
                purpose=challenge.purpose,
            )
        if blocked is None:
            provider = get_provider(challenge.provider_alias)
            code = None
            challenge.code_hash = ""
            if not provider.hosted_verify:
                code = generate_code()
                challenge.code_hash = hash_code(
                    code, challenge_id=challenge.public_id, purpose=challenge.purpose
                )
            challenge.last_sent_at = now
            ttl = app_settings.code_ttl(challenge.purpose, challenge.channel)
            challenge.expires_at = now + timedelta(seconds=ttl)
            challenge.send_count += 1
            challenge.save(update_fields=["code_hash", "last_sent_at", "expires_at", "send_count"])
    if blocked is not None:
        # Reported once the transaction is over, so that its audit row is kept.
        raise guard.refused(blocked, user=user, challenge=challenge, request=request)
    # Sent after the commit: a slow provider must not hold the row lock.
    device = challenge.device
    try:
        if device is None:
            raise DeliveryError()
        attempts = _deliver(challenge, code, device.destination_for(challenge.channel))
    except DeliveryError as exc:
        Challenge.objects.filter(pk=challenge.pk).update(
            status=ChallengeStatus.SEND_FAILED, code_hash="", failure_reason=exc.code
        )
        challenge.status = ChallengeStatus.SEND_FAILED
        delivery.record_attempts(challenge, exc.attempts)
        _audit_send(challenge, exc, request=request, first=False)
        raise
    Challenge.objects.filter(pk=challenge.pk).update(
        provider_reference=challenge.provider_reference,
        delivery_status=challenge.delivery_status,
    )
    delivery.record_attempts(challenge, attempts)
    _audit_send(challenge, None, request=request, first=False)
    challenge_issued.send(sender=Challenge, challenge=challenge, request=request, resend=True)
    return challenge


def cancel_challenge(public_id: object, *, user: Any = None) -> bool:
    """Invalidate a pending challenge. True if one was cancelled."""
    if not isinstance(public_id, str) or not public_id:
        return False
    qs = Challenge.objects.pending().filter(public_id=public_id)
    if user is not None:
        qs = qs.filter(user=user)
    challenge = qs.first()
    if challenge is None or not Challenge.objects.pending().filter(pk=challenge.pk).update(
        status=ChallengeStatus.CANCELLED, code_hash=""
    ):
        return False
    audit.record_challenge(challenge, [AuditEvent.Kind.CANCELLED])
    return True
