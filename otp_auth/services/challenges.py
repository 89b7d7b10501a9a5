"""Issue, verify, resend and cancel challenges: the only code that changes their state.

Verification runs in a transaction with the challenge row locked (``SELECT ... FOR
UPDATE``), so two correct submissions at once give exactly one success and N wrong ones
add exactly N failures. State changes are committed before an error is raised, so a
refused code still counts. No lock is held across a network call: a hosted-verify
check reserves its attempt under the lock, asks the vendor after the commit, and
records the answer under the lock again; sends happen outside any transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from ..conf import app_settings
from ..constants import ChallengeStatus, Purpose
from ..crypto import (
    code_key_id,
    generate_code,
    generate_public_id,
    hash_code,
    normalize_code,
    verify_code,
)
from ..exceptions import (
    ChallengeLockedError,
    ConfigurationError,
    CountryNotAllowedError,
    DeliveryError,
    DeviceError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    ResendLimitError,
    ResendTooSoonError,
)
from ..models import AuditEvent, Challenge, Device, Lockout
from ..providers import get_provider, provider_for_channel
from ..providers.routing import Attempt
from ..signals import challenge_failed, challenge_issued, challenge_locked, challenge_verified
from ..utils import client_ip, user_agent
from . import audit, delivery, guard, limits, lockout, sending

logger = logging.getLogger("otp_auth")

__all__ = [
    "cancel_challenge",
    "ensure_resendable",
    "issue_challenge",
    "resend_available_in",
    "resend_challenge",
    "send_in_flow",
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
    flow_id: str = "",
) -> Challenge:
    """Create a challenge for ``device`` and deliver its code.

    The code is sent before the row is written, so the row is written once, with the
    delivery outcome. Raises ``DeviceError`` for a device that cannot be used and
    ``DeliveryError`` when the provider fails (the challenge is then stored as
    ``send_failed`` for the audit trail and accepts no code).

    ``replaces`` is the challenge this one takes over from (another device in the same
    login): its wrong attempts and sends carry over, so switching never buys guesses.
    ``flow_id`` ties the challenge to a login flow; later sends of that flow go through
    ``send_in_flow``.
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
        flow_id=flow_id,
        expires_at=now + timedelta(seconds=app_settings.code_ttl(purpose, channel)),
        ip_address=client_ip(request),
        user_agent=user_agent(request),
    )
    code = None
    queued = sending.enabled()
    if not provider.hosted_verify and not queued:
        code = generate_code()
        challenge.code_hash = hash_code(code, challenge_id=challenge.public_id, purpose=purpose)
        challenge.key_id = code_key_id()
    try:
        if queued:
            # The worker makes the code and sends it (``services.sending``); a number
            # refused outright is refused now, on the page that asked.
            delivery.check_destination_allowed(channel, device.destination_for(channel))
            sending.prepare(challenge)
            attempts: Sequence[Attempt] = ()
        else:
            attempts = _deliver(challenge, code, device.destination_for(channel))
    except DeliveryError as exc:
        challenge.status = ChallengeStatus.SEND_FAILED
        challenge.code_hash = ""
        challenge.failure_reason = exc.code
        with transaction.atomic():
            challenge.save()
            delivery.record_attempts(challenge, exc.attempts)
            _audit_send(challenge, exc, request=request, first=True)
        raise
    if queued:
        challenge.save()
        sending.enqueue(challenge, first=True)
        return challenge
    # One transaction, one durable commit: the challenge and its audit row (and the
    # attempt rows, when they say more than the challenge does) are written together.
    with transaction.atomic():
        challenge.save()
        if _attempt_rows_needed(challenge, attempts):
            delivery.record_attempts(challenge, attempts)
        _audit_send(challenge, None, request=request, first=True)
    challenge_issued.send(sender=Challenge, challenge=challenge, request=request, resend=False)
    return challenge


def _attempt_rows_needed(challenge: Challenge, attempts: Sequence[Attempt]) -> bool:
    """Whether a successful send needs ``DeliveryAttempt`` rows: for a failover (more
    than one attempt, or another alias than the challenge's), and for a vendor whose
    status callbacks are matched against the attempt. One accepted attempt of a provider
    without callbacks is recorded on the challenge itself (alias, reference, status)."""
    if len(attempts) != 1:
        return bool(attempts)
    (attempt,) = attempts
    if attempt.outcome != "accepted" or attempt.alias != challenge.provider_alias:
        return True
    try:
        provider = get_provider(attempt.alias)
    except ConfigurationError:
        return True
    return hasattr(provider, "parse_status_callback")


@dataclass
class _Verdict:
    """What a check came to: ``error`` is ``None`` for an accepted code."""

    error: OTPAuthError | None = None
    locked_now: bool = False
    lock_started: str | None = None


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

    A code that only a hosted-verify vendor can judge is checked in three steps, so that
    no row lock is held across the vendor's HTTP call: reserve (under the locks, the
    same checks, then one attempt counted and the check marked in flight; committed),
    ask the vendor (outside any transaction), record the answer (under the locks again).
    """
    normalized: str | None = None
    reservation = guard.before_verify(request, user=user)
    state: Lockout | None = None
    with transaction.atomic():
        now = _now()
        challenge = _locked_challenge(public_id)
        verdict: _Verdict | None = _Verdict(_admission(challenge, purpose, user, now))
        if verdict is not None and verdict.error is None:
            assert challenge is not None
            # A hosted-verify vendor's codes use its own alphabet, not ``CODE_ALPHABET``.
            normalized = normalize_code(code, _code_characters(challenge))
            # The user's Lockout row stays locked to the end of the step: parallel checks
            # of any of the user's challenges take their turn against one budget.
            state = lockout.acquire(challenge.user_id)
            verdict = _judge_or_reserve(
                challenge, state, normalized, now, counts_toward_lockout=counts_toward_lockout
            )
            _audit_success(challenge, verdict, request)
    if verdict is None:
        # Reserved and committed: the vendor is asked with no row locked.
        assert challenge is not None and normalized is not None
        try:
            matched = _code_matches(challenge, normalized)
        except Exception:
            # Not a vendor's answer but a fault (a provider bug): the attempt stays
            # counted, the place in flight is given back, and the error propagates.
            _abandon(challenge, counts_toward_lockout=counts_toward_lockout)
            raise
        with transaction.atomic():
            now = _now()
            challenge = _locked_challenge(challenge.public_id)
            if challenge is None:  # deleted meanwhile, with its user
                verdict, state = _Verdict(InvalidCodeError("unknown")), None
            else:
                state = lockout.acquire(challenge.user_id)
                if counts_toward_lockout:
                    lockout.end_check(state, now)
                verdict = _record(
                    challenge,
                    state,
                    matched,
                    now,
                    reserved=True,
                    malformed=False,
                    counts_toward_lockout=counts_toward_lockout,
                )
                _audit_success(challenge, verdict, request)
    return _report(challenge, state, verdict, user=user, request=request, reservation=reservation)


def _audit_success(
    challenge: Challenge | None, verdict: _Verdict | None, request: HttpRequest | None
) -> None:
    """An accepted code's audit row, in the transaction that consumes the challenge."""
    if challenge is not None and verdict is not None and verdict.error is None:
        audit.record_challenge(challenge, [AuditEvent.Kind.VERIFIED], request=request)


def _abandon(challenge: Challenge, *, counts_toward_lockout: bool) -> None:
    with transaction.atomic():
        now = _now()
        row = _locked_challenge(challenge.public_id)
        if row is not None:
            row.checks_in_flight = max(_checks_in_flight(row, now) - 1, 0)
            row.save(update_fields=["checks_in_flight"])
            if counts_toward_lockout:
                lockout.end_check(lockout.acquire(row.user_id), now)


def _admission(
    challenge: Challenge | None, purpose: str, user: Any, now: datetime
) -> OTPAuthError | None:
    """Why ``challenge`` takes no code at all, or ``None`` (on the locked row)."""
    if challenge is None or challenge.purpose != purpose:
        return InvalidCodeError("unknown")
    if user is not None and challenge.user_id != user.pk:
        return InvalidCodeError("unknown")
    if challenge.status != ChallengeStatus.PENDING:
        return _closed(challenge)
    if challenge.is_expired(now):
        challenge.status = ChallengeStatus.EXPIRED
        challenge.save(update_fields=["status"])
        return InvalidCodeError("expired")
    return None


def _closed(challenge: Challenge) -> OTPAuthError:
    """The refusal for a challenge that is no longer pending."""
    if challenge.status == ChallengeStatus.LOCKED:
        return ChallengeLockedError()
    reason = "used" if challenge.status == ChallengeStatus.VERIFIED else challenge.status
    return InvalidCodeError(reason)


def _checks_in_flight(challenge: Challenge, now: datetime) -> int:
    """Hosted checks of ``challenge`` not yet recorded (0 once stale)."""
    if challenge.checks_due_by is None or challenge.checks_due_by <= now:
        return 0
    return challenge.checks_in_flight


def _reservation_seconds() -> float:
    """How long a reserved hosted check may stay unrecorded before it is stale (its
    worker died): longer than any HTTP exchange with the vendor can take."""
    return max(60.0, 2 * (app_settings.HTTP_CONNECT_TIMEOUT + app_settings.HTTP_READ_TIMEOUT))


def _judge_or_reserve(
    challenge: Challenge,
    state: Lockout,
    normalized: str | None,
    now: datetime,
    *,
    counts_toward_lockout: bool,
) -> _Verdict | None:
    """On the locked rows of a pending challenge: the verdict of a code judged here, or
    ``None`` once a hosted check is reserved (the caller then asks the vendor)."""
    if challenge.attempts >= challenge.max_attempts:
        # Every attempt left is out with the vendor: whatever they turn out to be, this
        # code can no longer be accepted (counted attempts include those in flight). A
        # stale reservation (its worker died) stays counted, and the challenge locks.
        if not _checks_in_flight(challenge, now):
            challenge.status = ChallengeStatus.LOCKED
            challenge.code_hash = ""
            challenge.save(update_fields=["status", "code_hash"])
        return _Verdict(ChallengeLockedError())
    error = lockout.refusal(state, now)
    if error is not None:
        return _Verdict(error)
    if normalized is not None and get_provider(challenge.provider_alias).hosted_verify:
        due_by = now + timedelta(seconds=_reservation_seconds())
        challenge.attempts += 1
        challenge.checks_in_flight = _checks_in_flight(challenge, now) + 1
        challenge.checks_due_by = max(due_by, challenge.checks_due_by or due_by)
        challenge.save(update_fields=["attempts", "checks_in_flight", "checks_due_by"])
        if counts_toward_lockout:
            lockout.begin_check(state, now, due_by)
        return None
    matched = normalized is not None and _code_matches(challenge, normalized)
    return _record(
        challenge,
        state,
        matched,
        now,
        reserved=False,
        malformed=normalized is None,
        counts_toward_lockout=counts_toward_lockout,
    )


def _record(
    challenge: Challenge,
    state: Lockout,
    matched: bool | None,
    now: datetime,
    *,
    reserved: bool,
    malformed: bool,
    counts_toward_lockout: bool,
) -> _Verdict:
    """Apply a judged code to the locked rows.

    ``reserved``: the attempt was counted when the hosted check was reserved. A right
    code consumes a challenge that is still pending, once; a right code that finds it
    consumed or cancelled meanwhile is refused like any code then. A wrong code keeps
    its counted attempt, counts toward the lockout and locks the challenge once the last
    attempt is in and no other check is still out. An unanswered check (``matched`` is
    ``None``: vendor error or timeout) gives its attempt back and counts nowhere, so an
    outage cannot lock anyone out.
    """
    verdict = _Verdict()
    if reserved:
        challenge.checks_in_flight = max(_checks_in_flight(challenge, now) - 1, 0)
        if not challenge.checks_in_flight:
            challenge.checks_due_by = None
    if matched is None or (matched and challenge.status != ChallengeStatus.PENDING):
        if reserved:
            challenge.attempts = max(challenge.attempts - 1, 0)
        if matched is None:
            verdict.error = InvalidCodeError("provider_error")
        else:
            verdict.error = _closed(challenge)
    elif matched:
        if reserved:
            challenge.attempts = max(challenge.attempts - 1, 0)
        challenge.status = ChallengeStatus.VERIFIED
        challenge.consumed_at = now
        challenge.code_hash = ""
        if challenge.device_id:
            Device.objects.filter(pk=challenge.device_id).update(last_used_at=now)
        if counts_toward_lockout:
            lockout.record_success(state)
    else:
        if not reserved:
            challenge.attempts += 1
        if counts_toward_lockout:
            verdict.lock_started = lockout.record_failure(state, now)
        if (
            challenge.status == ChallengeStatus.PENDING
            and challenge.attempts >= challenge.max_attempts
            and not challenge.checks_in_flight
        ):
            challenge.status = ChallengeStatus.LOCKED
            challenge.code_hash = ""
            verdict.locked_now = True
        if challenge.status == ChallengeStatus.LOCKED:
            verdict.error = ChallengeLockedError()
        else:
            verdict.error = InvalidCodeError("malformed" if malformed else "wrong")
    challenge.save(
        update_fields=[
            "attempts",
            "status",
            "consumed_at",
            "code_hash",
            "checks_in_flight",
            "checks_due_by",
        ]
    )
    return verdict


def _report(
    challenge: Challenge | None,
    state: Lockout | None,
    verdict: _Verdict,
    *,
    user: Any,
    request: HttpRequest | None,
    reservation: limits.Reservation,
) -> Challenge:
    """After the transaction: return the accepted challenge, or audit, signal and raise
    the refusal (and announce a lock that this refusal started)."""
    error = verdict.error
    if error is None:
        assert challenge is not None
        reservation.release()  # an accepted code is not a failure from this address
        challenge_verified.send(sender=Challenge, challenge=challenge, request=request)
        return challenge
    reason = getattr(error, "reason", error.code)
    if isinstance(error, RateLimitedError) or reason == "provider_error":
        reservation.release()  # no code was judged
    if isinstance(error, RateLimitedError):
        raise guard.refused(error, user=user, challenge=challenge, request=request)
    challenge_failed.send(sender=Challenge, challenge=challenge, reason=reason, request=request)
    _audit_refusal(
        challenge, reason, verdict.locked_now, verdict.lock_started, user=user, request=request
    )
    if verdict.locked_now:
        challenge_locked.send(sender=Challenge, challenge=challenge, request=request)
    if verdict.lock_started:
        assert challenge is not None and state is not None
        lockout.announce(state, verdict.lock_started, user=challenge.user, request=request)
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


def _code_characters(challenge: Challenge) -> str | None:
    """The characters the challenge's code may hold: a hosted-verify vendor's own
    alphabet, or ``None`` for codes generated here (``CODE_ALPHABET``)."""
    try:
        provider = get_provider(challenge.provider_alias)
    except ConfigurationError:
        return None
    if not provider.hosted_verify:
        return None
    return provider.code_characters(challenge.provider_reference)


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
        queued = sending.enabled()
        if blocked is None and queued:
            sending.prepare(challenge)
        if blocked is None:
            provider = get_provider(challenge.provider_alias)
            code = None
            challenge.code_hash = ""
            if not provider.hosted_verify and not queued:
                code = generate_code()
                challenge.code_hash = hash_code(
                    code, challenge_id=challenge.public_id, purpose=challenge.purpose
                )
                challenge.key_id = code_key_id()
            challenge.last_sent_at = now
            ttl = app_settings.code_ttl(challenge.purpose, challenge.channel)
            challenge.expires_at = now + timedelta(seconds=ttl)
            challenge.send_count += 1
            challenge.save(
                update_fields=[
                    "code_hash",
                    "key_id",
                    "last_sent_at",
                    "expires_at",
                    "send_count",
                    "send_ticket",
                    "send_state",
                    "delivery_status",
                    "provider_reference",
                ]
            )
            if queued:
                # A task of an earlier send finds its ticket replaced and sends nothing.
                sending.enqueue(challenge, first=False)
    if blocked is not None:
        # Reported once the transaction is over, so that its audit row is kept.
        raise guard.refused(blocked, user=user, challenge=challenge, request=request)
    if queued:
        return challenge
    # Sent after the commit: a slow provider must not hold the row lock.
    device = challenge.device
    try:
        if device is None:
            raise DeliveryError()
        attempts = _deliver(challenge, code, device.destination_for(challenge.channel))
    except DeliveryError as exc:
        with transaction.atomic():
            Challenge.objects.filter(pk=challenge.pk).update(
                status=ChallengeStatus.SEND_FAILED, code_hash="", failure_reason=exc.code
            )
            challenge.status = ChallengeStatus.SEND_FAILED
            delivery.record_attempts(challenge, exc.attempts)
            _audit_send(challenge, exc, request=request, first=False)
        raise
    with transaction.atomic():
        Challenge.objects.filter(pk=challenge.pk).update(
            provider_reference=challenge.provider_reference,
            delivery_status=challenge.delivery_status,
        )
        if _attempt_rows_needed(challenge, attempts):
            delivery.record_attempts(challenge, attempts)
        _audit_send(challenge, None, request=request, first=False)
    challenge_issued.send(sender=Challenge, challenge=challenge, request=request, resend=True)
    return challenge


def _locked_latest_in_flow(flow_id: str, user: Any) -> Challenge | None:
    qs = Challenge.objects.filter(flow_id=flow_id, user_id=user.pk).order_by("-created_at", "-pk")
    if connection.features.has_select_for_update_of:
        qs = qs.select_for_update(of=("self",))
    else:
        qs = qs.select_for_update()
    return qs.first()


def send_in_flow(
    flow_id: str,
    *,
    user: Any,
    device: Device | None = None,
    purpose: str = Purpose.LOGIN,
    request: HttpRequest | None = None,
) -> Challenge:
    """The next code of a login flow: the one rule for resends and device switches.

    A flow has at most one live challenge, and every new send (``device=None``: again to
    the current device; else to ``device``) is judged against the flow's *latest*
    challenge, whatever the client says is current: its lock, ``MAX_RESENDS`` and the
    cooldown apply, its wrong attempts carry over. Under the latest row's lock, a switch
    reserves its send there (the cooldown starts, the send is counted) and cancels every
    pending code of the flow, then delivers after the commit: two racing switches give
    one send, and replaying an older flow token re-opens nothing.
    """
    if not flow_id:
        raise InvalidCodeError("unknown")
    if device is None:
        with transaction.atomic():
            latest = _locked_latest_in_flow(flow_id, user)
            public_id = latest.public_id if latest is not None else None
        return resend_challenge(public_id, user=user, request=request)
    now = _now()
    with transaction.atomic():
        latest = _locked_latest_in_flow(flow_id, user)
        if latest is not None:
            ensure_resendable(latest)
            latest.last_sent_at = now
            latest.send_count += 1
            latest.save(update_fields=["last_sent_at", "send_count"])
            superseded = list(Challenge.objects.pending().filter(flow_id=flow_id, user_id=user.pk))
            Challenge.objects.filter(pk__in=[c.pk for c in superseded]).update(
                status=ChallengeStatus.CANCELLED, code_hash=""
            )
    for challenge in superseded if latest is not None else []:
        audit.record_challenge(challenge, [AuditEvent.Kind.CANCELLED])
    carried = None
    if latest is not None:
        # The reservation above already counted this send on the latest challenge.
        carried = Challenge(attempts=latest.attempts, send_count=latest.send_count - 1)
    return issue_challenge(
        user=user,
        device=device,
        purpose=purpose,
        request=request,
        replaces=carried,
        flow_id=flow_id,
    )


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
