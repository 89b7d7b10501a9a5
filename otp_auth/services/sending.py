"""Background sending: the request issues the challenge, a task worker sends its code.

On with ``OTP_AUTH["SEND_IN_BACKGROUND"]``. The request does everything that decides
whether a code may go out (limits, cooldown, resend count, device checks) and writes the
challenge with a random *ticket* for the send it owes (``send_state="queued"``), then
enqueues a task naming the challenge, the ticket and the account-security epoch, once the
transaction has committed. No code travels through the queue, in clear or encrypted:
the worker generates the code and writes its hash itself, so a queue broker or its
backups never hold anything that opens an account.

The worker sends at most once per ticket, with the same reserve / call / record steps as
every vendor call here:

1. **reserve**, under the challenge row's lock: the challenge must be pending, unexpired,
   still owe *this* ticket (a resend or a device switch replaces or cancels it), and the
   user's epoch must be the one the send was queued under. Then the code is generated, its
   hash stored, and the send marked ``sending``; committed.
2. **call** the vendors through routing (failover, circuit breaker), with no lock held.
3. **record**, under the lock again: attempts, vendor reference and status. A challenge
   closed meanwhile keeps its status: a send never revives it.

A task run again (a broker redelivering, a worker restarted) finds the ticket ``sending``
or ``sent`` and sends nothing: whatever the vendor did with the first call stands, as a
read timeout does. When every vendor refused without sending (unavailable, rate limited,
circuit open), the send goes back to ``queued`` and a new task is enqueued, up to
``SEND_RETRIES`` times, while the code has time left to live.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..conf import app_settings
from ..constants import ChallengeStatus
from ..crypto import code_key_id, generate_code, hash_code
from ..exceptions import DeliveryError, ProviderRateLimitError, ProviderUnavailableError
from ..models import AuditEvent, Challenge
from ..providers import get_provider
from ..providers.health import CIRCUIT_OPEN
from ..providers.routing import Attempt
from ..signals import challenge_issued
from . import audit, delivery, epoch

__all__ = [
    "DROPPED",
    "FAILED",
    "QUEUED",
    "SENDING",
    "SENT",
    "deliver",
    "enabled",
    "enqueue",
    "prepare",
]

logger = logging.getLogger("otp_auth")

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"

#: Refusals after which nothing was sent and a later try may succeed.
RETRYABLE = frozenset({ProviderUnavailableError.code, ProviderRateLimitError.code, CIRCUIT_OPEN})
#: A retry is enqueued only while the code has at least this long left to live.
MIN_TIME_LEFT = 30


def enabled() -> bool:
    return app_settings.SEND_IN_BACKGROUND


def prepare(challenge: Challenge) -> None:
    """Mark ``challenge`` (not yet saved, or locked) as owing one queued send: a new
    ticket, no code yet (the worker makes it), status "sending" on the code page."""
    challenge.code_hash = ""
    challenge.send_ticket = secrets.token_hex(16)
    challenge.send_state = QUEUED
    challenge.delivery_status = SENDING
    challenge.provider_reference = ""


def enqueue(challenge: Challenge, *, first: bool) -> None:
    """Enqueue the send ``prepare`` reserved, once the current transaction commits (the
    worker must see the row)."""
    kwargs: dict[str, Any] = {
        "challenge": challenge.public_id,
        "ticket": challenge.send_ticket,
        "epoch": epoch.current(challenge.user_id),
        "first": first,
        "attempt": 1,
    }
    transaction.on_commit(lambda: _enqueue(kwargs))


def _enqueue(kwargs: dict[str, Any], delay: float = 0) -> None:
    from ..tasks import send_challenge

    try:
        task = send_challenge.using(backend=app_settings.TASK_BACKEND)
        if delay and task.get_backend().supports_defer:
            task = task.using(run_after=timezone.now() + timedelta(seconds=delay))
        task.enqueue(**kwargs)
    except Exception as exc:
        # The queue is down: send from this process rather than lose the code. The
        # ticket still guards against a task that did get through.
        logger.error(
            "otp_auth: could not enqueue the send of challenge %s (%s); sending now",
            kwargs["challenge"][:8],
            type(exc).__name__,
        )
        deliver(**kwargs)


def deliver(*, challenge: str, ticket: str, epoch: int, first: bool, attempt: int) -> str:
    """The worker's side: reserve, call, record. Returns ``sent``, ``failed``,
    ``retrying``, ``dropped`` (the challenge closed, expired or its epoch moved) or
    ``done`` (this ticket was already handled, or replaced)."""
    from .challenges import _deliver

    reserved = _reserve(challenge, ticket, epoch)
    if isinstance(reserved, str):
        return reserved
    row, code = reserved
    device = row.device
    try:
        if device is None:
            raise DeliveryError()
        attempts: Sequence[Attempt] = _deliver(row, code, device.destination_for(row.channel))
    except DeliveryError as exc:
        return _record_failure(row, ticket, exc, epoch=epoch, first=first, attempt=attempt)
    return _record_success(row, ticket, attempts, first=first)


def _locked(public_id: str) -> Challenge | None:
    from .challenges import _locked_challenge

    return _locked_challenge(public_id)


def _reserve(public_id: str, ticket: str, carried_epoch: int) -> tuple[Challenge, str | None] | str:
    dropped: Challenge | None = None
    reason = ""
    with transaction.atomic():
        row = _locked(public_id)
        if row is None or not ticket or row.send_ticket != ticket or row.send_state != QUEUED:
            return "done"
        now = timezone.now()
        if row.status != ChallengeStatus.PENDING:
            reason = row.status
        elif row.is_expired(now):
            row.status = ChallengeStatus.EXPIRED
            reason = "expired"
        elif not epoch.is_current(row.user_id, carried_epoch):
            row.status = ChallengeStatus.CANCELLED
            reason = "epoch"
            dropped = row
        if reason:
            row.code_hash = ""
            row.send_state = DROPPED
            row.delivery_status = ""
            row.save(update_fields=["status", "code_hash", "send_state", "delivery_status"])
            if dropped is None:
                return "dropped"
        else:
            code = None
            if not get_provider(row.provider_alias).hosted_verify:
                code = generate_code()
                row.code_hash = hash_code(code, challenge_id=row.public_id, purpose=row.purpose)
                row.key_id = code_key_id()
            row.send_state = SENDING
            row.save(update_fields=["code_hash", "key_id", "send_state"])
            return row, code
    audit.record_challenge(dropped, [(AuditEvent.Kind.CANCELLED, reason)])
    return "dropped"


def _record_success(
    reserved: Challenge, ticket: str, attempts: Sequence[Attempt], *, first: bool
) -> str:
    from .challenges import _audit_send

    with transaction.atomic():
        row = _locked(reserved.public_id)
        if row is None:
            return "done"
        if row.send_ticket == ticket and row.send_state == SENDING:
            row.send_state = SENT
            row.provider_reference = reserved.provider_reference
            row.delivery_status = reserved.delivery_status
            row.save(update_fields=["send_state", "provider_reference", "delivery_status"])
    # The vendor took the message whatever happened to the challenge meanwhile: the
    # attempts and the send are on record, and a closed challenge stays closed.
    delivery.record_attempts(row, attempts)
    _audit_send(row, None, request=None, first=first)
    if row.status == ChallengeStatus.PENDING:
        challenge_issued.send(sender=Challenge, challenge=row, request=None, resend=not first)
    return SENT


def _retryable(exc: DeliveryError, attempt: int, row: Challenge) -> bool:
    if attempt > app_settings.SEND_RETRIES:
        return False
    outcomes = [a.outcome for a in exc.attempts]
    if not outcomes or any(o not in ("failed", "skipped") for o in outcomes):
        return False  # something may have been sent: never again
    if exc.code not in RETRYABLE and not all(o == "skipped" for o in outcomes):
        return False
    left = (row.expires_at - timezone.now()).total_seconds()
    return left > MIN_TIME_LEFT + _backoff(attempt)


def _backoff(attempt: int) -> float:
    return float(2**attempt)


def _record_failure(
    reserved: Challenge,
    ticket: str,
    exc: DeliveryError,
    *,
    epoch: int,
    first: bool,
    attempt: int,
) -> str:
    from .challenges import _audit_send

    retry = False
    with transaction.atomic():
        row = _locked(reserved.public_id)
        if row is None:
            return "done"
        ours = row.send_ticket == ticket and row.send_state == SENDING
        if ours and row.status == ChallengeStatus.PENDING and _retryable(exc, attempt, row):
            retry = True
            row.send_state = QUEUED
            row.code_hash = ""
            row.save(update_fields=["send_state", "code_hash"])
        elif ours:
            row.send_state = FAILED
            row.code_hash = ""
            row.delivery_status = FAILED
            fields = ["send_state", "code_hash", "delivery_status"]
            if row.status == ChallengeStatus.PENDING:
                row.status = ChallengeStatus.SEND_FAILED
                row.failure_reason = exc.code
                fields += ["status", "failure_reason"]
            row.save(update_fields=fields)
    delivery.record_attempts(row, exc.attempts)
    if retry:
        kwargs = {
            "challenge": row.public_id,
            "ticket": ticket,
            "epoch": epoch,
            "first": first,
            "attempt": attempt + 1,
        }
        transaction.on_commit(lambda: _enqueue(kwargs, delay=_backoff(attempt)))
        return "retrying"
    _audit_send(row, exc, request=None, first=first)
    return FAILED
