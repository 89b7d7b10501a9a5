"""Per-user lockout after refused codes in a row, as NIST SP 800-63B-4 §3.2.2 asks.

Every refused code of a user counts, whatever the challenge, resend, device, channel,
session, address or interface (form, API, backend); only that user's accepted code
clears the count. Past ``VERIFY_DELAY_AFTER`` refusals each next code waits 1, 2, 4...
seconds; every ``LOCKOUT_THRESHOLD`` refusals lock the second factor for
``LOCKOUT_DURATION`` (doubling each time, up to a day); at ``DISABLE_THRESHOLD`` it stays
disabled until an administrator unlocks it.

``verify_challenge`` locks the user's ``Lockout`` row while it judges a code, so parallel
requests, even on different challenges, are judged one after the other against one
budget: no code is looked at once the limit is reached. A hosted-verify check asks the
vendor with no lock held: it first reserves its place (``begin_check``), and until its
outcome is recorded every other check counts it as a refusal to come (``refusal``), so
the vendor never judges a code that the one-at-a-time order would have refused.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import AccountLockedError, RateLimitedError
from ..models import AuditEvent, Lockout
from ..signals import account_locked, account_unlocked
from . import audit, epoch, notify

__all__ = [
    "acquire",
    "begin_check",
    "checks_in_flight",
    "delay_after",
    "end_check",
    "ensure_unlocked",
    "known_state",
    "lock_seconds",
    "record_failure",
    "record_success",
    "refusal",
    "unlock",
]

MAX_LOCK_SECONDS = 86_400


def delay_after(failures: int) -> int:
    """Seconds the next code waits after ``failures`` refusals in a row."""
    ceiling = app_settings.VERIFY_DELAY_MAX
    free = max(app_settings.VERIFY_DELAY_AFTER, 1)
    if not ceiling or failures < free:
        return 0
    return int(min(2 ** min(failures - free, 32), ceiling))


def lock_seconds(failures: int) -> int:
    """Length of the temporary lock that ``failures`` refusals start (0: none)."""
    threshold = app_settings.LOCKOUT_THRESHOLD
    if not threshold or failures % threshold:
        return 0
    locks = failures // threshold
    return int(min(app_settings.LOCKOUT_DURATION * 2 ** min(locks - 1, 32), MAX_LOCK_SECONDS))


def _wait(until: datetime, now: datetime) -> int:
    return max(math.ceil((until - now).total_seconds()), 1)


def _lock_error(state: Lockout, now: datetime) -> AccountLockedError | None:
    if state.disabled_at is not None:
        return AccountLockedError(disabled=True)
    if state.locked_until is not None and state.locked_until > now:
        return AccountLockedError(_wait(state.locked_until, now))
    return None


_known: contextvars.ContextVar[tuple[str, Lockout | None] | None] = contextvars.ContextVar(
    "otp_auth_lockout_known", default=None
)


@contextmanager
def known_state(user_id: Any, state: Lockout | None) -> Iterator[None]:
    """``state`` (``None``: no row) is the user's row as just read with their factors:
    ``ensure_unlocked`` uses it instead of reading again. It is a read without a lock
    either way; the locked check at verification is what decides."""
    token = _known.set((str(user_id), state))
    try:
        yield
    finally:
        _known.reset(token)


def ensure_unlocked(user_id: Any, now: datetime | None = None) -> None:
    """Raise ``AccountLockedError`` while the user's second factor is locked, so that no
    code is sent that could not be used. One indexed read (none inside ``known_state``);
    the user's first code also creates the row, so that checking it later only has to
    lock it."""
    known = _known.get()
    if known is not None and known[0] == str(user_id):
        state = known[1]
    else:
        state = Lockout.objects.filter(user_id=user_id).first()
    if state is None:
        Lockout.objects.bulk_create([Lockout(user_id=user_id)], ignore_conflicts=True)
        return
    error = _lock_error(state, now or timezone.now())
    if error is not None:
        raise error


def acquire(user_id: Any) -> Lockout:
    """The user's row, locked until the surrounding transaction ends (created at first
    use; a concurrent creator is waited for, not duplicated)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lockout.acquire() must run inside transaction.atomic().")
    locked = Lockout.objects.select_for_update()
    state = locked.filter(user_id=user_id).first()
    if state is None:
        Lockout.objects.bulk_create([Lockout(user_id=user_id)], ignore_conflicts=True)
        state = locked.get(user_id=user_id)
    return state


def refusal(state: Lockout, now: datetime) -> RateLimitedError | None:
    """Why no code may be checked now (lock, disabled factor, or the wait after the last
    refusal), or ``None``.

    Hosted checks still under way count as refusals to come: a code is refused (wait a
    second) when, had they all failed, it would have had to wait or met a lock."""
    error: RateLimitedError | None = _lock_error(state, now)
    if error is None and state.last_failure_at is not None:
        wait = delay_after(state.failures)
        ready = state.last_failure_at + timedelta(seconds=wait)
        if wait and ready > now:
            error = RateLimitedError(_wait(ready, now), limit="verify_delay")
    pending = checks_in_flight(state, now)
    if error is None and pending and _would_stop(state.failures, pending):
        error = RateLimitedError(1, limit="verify_delay")
    return error


def _would_stop(failures: int, pending: int) -> bool:
    projected = failures + pending
    return (
        projected >= app_settings.DISABLE_THRESHOLD
        or delay_after(projected) > 0
        or any(lock_seconds(n) for n in range(failures + 1, projected + 1))
    )


def checks_in_flight(state: Lockout, now: datetime) -> int:
    """Hosted checks of the user reserved and not yet recorded (0 once they are stale:
    a worker that died mid-check must not block the user for long)."""
    if state.checks_due_by is None or state.checks_due_by <= now:
        return 0
    return state.checks_in_flight


def begin_check(state: Lockout, now: datetime, due_by: datetime) -> None:
    """Reserve a place for one hosted check on the locked row."""
    state.checks_in_flight = checks_in_flight(state, now) + 1
    state.checks_due_by = max(due_by, state.checks_due_by or due_by)
    state.save(update_fields=["checks_in_flight", "checks_due_by"])


def end_check(state: Lockout, now: datetime) -> None:
    """Give back the place of a hosted check whose outcome is being recorded."""
    state.checks_in_flight = max(checks_in_flight(state, now) - 1, 0)
    if not state.checks_in_flight:
        state.checks_due_by = None
    state.save(update_fields=["checks_in_flight", "checks_due_by"])


def record_failure(state: Lockout, now: datetime) -> str | None:
    """Count one refused code on the locked row; return ``"account_locked"`` or
    ``"factor_disabled"`` when this refusal starts a lock."""
    state.failures += 1
    state.last_failure_at = now
    started = None
    if state.failures >= app_settings.DISABLE_THRESHOLD:
        if state.disabled_at is None:
            state.disabled_at = now
            started = AuditEvent.Kind.FACTOR_DISABLED.value
    else:
        seconds = lock_seconds(state.failures)
        if seconds:
            state.locked_until = now + timedelta(seconds=seconds)
            started = AuditEvent.Kind.ACCOUNT_LOCKED.value
    state.save(update_fields=["failures", "last_failure_at", "locked_until", "disabled_at"])
    return started


def record_success(state: Lockout) -> None:
    """An accepted code clears this user's count (and nobody else's)."""
    if state.failures or state.last_failure_at or state.locked_until:
        state.failures = 0
        state.last_failure_at = None
        state.locked_until = None
        state.save(update_fields=["failures", "last_failure_at", "locked_until"])


def announce(
    state: Lockout, started: str, *, user: Any = None, request: HttpRequest | None = None
) -> None:
    """Send ``account_locked`` for a lock that ``record_failure`` started (after the
    transaction, with the audit row written)."""
    owner = state.user if user is None else user
    disabled = started == AuditEvent.Kind.FACTOR_DISABLED
    if disabled:
        # A factor under attack: end everything that vouches for the account, the
        # request's own session too (it was the guessing one).
        epoch.advance(owner, reason=epoch.Reason.FACTOR_DISABLED, keep_current=False)
    account_locked.send(
        sender=Lockout, user=owner, lockout=state, disabled=disabled, request=request
    )
    # Whoever is guessing knows the password: the owner should hear about it.
    notify.notify(
        owner, "account_locked", request=request, disabled=disabled, until=state.locked_until
    )


def unlock(
    state: Lockout, *, actor: Any = None, request: HttpRequest | None = None, reason: str = ""
) -> bool:
    """Clear the user's count, lock and disabled state; audited with ``actor``.

    Returns False when there was nothing to clear. Staff unlock from the admin; a site's
    own recovery flow may call this too, after it has re-established the user's
    identity (NIST SP 800-63B-4 §4.2).
    """
    with transaction.atomic():
        fresh = Lockout.objects.select_for_update().filter(pk=state.pk).first()
        if fresh is None or not (fresh.failures or fresh.locked_until or fresh.disabled_at):
            return False
        detail = f"failures={fresh.failures}" + (" disabled" if fresh.disabled_at else "")
        Lockout.objects.filter(pk=fresh.pk).update(
            failures=0, last_failure_at=None, locked_until=None, disabled_at=None
        )
        audit.log(
            AuditEvent.Kind.UNLOCKED,
            user=fresh.user_id,
            actor=actor,
            request=request,
            reason=reason or "unlocked",
            detail=detail,
        )
    state.refresh_from_db()
    # The actor's session is not the user's, so nothing of theirs is kept.
    epoch.advance(state.user, reason=epoch.Reason.UNLOCKED, request=request)
    account_unlocked.send(
        sender=Lockout, user=state.user, lockout=state, actor=actor, request=request
    )
    return True


def refuses_now(user_id: Any, now: datetime | None = None) -> bool:
    """True while the user's codes would be refused (a lock, a disabled factor, or the
    wait after refused codes): whatever skips the code step (a remembered browser) must
    not skip this. One indexed read, no lock."""
    state = Lockout.objects.filter(user_id=user_id).first()
    return state is not None and refusal(state, now or timezone.now()) is not None
