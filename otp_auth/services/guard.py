"""The limits every password, send and code check pass first, and the report of a
refusal.

A refused password is not looked at, a refused send reaches no provider, a refused check
looks at no code. Each refusal writes a ``rate_limited`` audit row and sends the
``rate_limited`` signal, which is the hook for alerts (the site-wide ``send_budget`` also
logs an error once per window; a slowed-down password step reports once per wait).
"""

from __future__ import annotations

import logging
import math
import time
import unicodedata
from typing import Any

from django.contrib.auth import authenticate, user_login_failed
from django.core.cache import caches
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from ..conf import app_settings
from ..constants import Channel, Purpose
from ..exceptions import DeviceError, RateLimitedError
from ..models import AuditEvent, Challenge, Device
from ..signals import rate_limited
from ..utils import client_ip
from . import audit, limits, lockout

__all__ = [
    "before_send",
    "before_verify",
    "check_password",
    "forget_password_failures",
    "password_delay",
    "refused",
    "send_refusal",
]

PASSWORD_SALT = "otp_auth.services.guard.password"
# How long refused passwords of one account are remembered without a success.
PASSWORD_MEMORY = 86_400
# Longest a password check can take: a gate left by a crashed request frees itself.
GATE_SECONDS = 60

logger = logging.getLogger("otp_auth")


def _now() -> float:
    """The clock of the password delay, a seam for tests."""
    return time.time()


def password_delay(failures: int) -> int:
    """Seconds to wait after the ``failures``-th refused password of an account: none up
    to ``PASSWORD_DELAY_AFTER``, then 1, 2, 4... up to ``PASSWORD_DELAY_MAX``."""
    after, top = app_settings.PASSWORD_DELAY_AFTER, app_settings.PASSWORD_DELAY_MAX
    if not top or failures <= after:
        return 0
    return int(min(2 ** min(failures - after - 1, 20), top))


def _account_digest(username: str) -> str:
    """The account a password is tried against, as typed: NFKC, trimmed and
    case-folded (so that ``Alice`` and ``alice `` share one count) and keyed-hashed (so
    that the cache holds no username). Unknown names count exactly like real ones."""
    text = unicodedata.normalize("NFKC", username).strip().casefold()
    return salted_hmac(PASSWORD_SALT, text, algorithm="sha256").hexdigest()[:32]


def forget_password_failures(username: str) -> None:
    """Clear the refused-password count and wait of ``username`` (an operator's reset)."""
    digest = _account_digest(username)
    caches[app_settings.CACHE].delete_many(
        [
            f"otp_auth:pw:failures:{digest}",
            f"otp_auth:pw:until:{digest}",
            f"otp_auth:pw:gate:{digest}:0.0",
        ]
    )


def check_password(request: HttpRequest | None, username: str, password: str) -> Any | None:
    """The password step of every login path (HTML and API): the user whose ``username``
    and ``password`` the project's backends accept, or ``None``.

    Raises ``RateLimitedError`` without looking at the password, the same way whether the
    account exists and whether the password is right, when the client address has sent
    too many refused passwords (``password_failures_per_ip``) or the account is inside
    its wait (``PASSWORD_DELAY_AFTER``). The wait only slows guessing down: it never locks
    the account, so strangers cannot keep its owner out for longer than
    ``PASSWORD_DELAY_MAX`` per guess of theirs. Refusals still send Django's
    ``user_login_failed``, as ``authenticate`` does for a wrong password.
    """
    cache = caches[app_settings.CACHE]
    digest = _account_digest(username)
    failures_key = f"otp_auth:pw:failures:{digest}"
    until_key = f"otp_auth:pw:until:{digest}"
    now = _now()
    ip = client_ip(request)
    try:
        by_ip = limits.take("password_failures_per_ip", f"ip:{ip}") if ip else None
    except RateLimitedError as exc:
        raise _password_refused(exc, request, username, f"ip:{ip}") from None
    until = float(cache.get(until_key) or 0)
    if now < until:
        if by_ip is not None:
            by_ip.release()
        wait = RateLimitedError(max(math.ceil(until - now), 1), limit="password_delay")
        raise _password_refused(wait, request, username, digest, until)
    # Counted before the check, so that parallel guesses each get their own number: past
    # the free ones, a single request per wait holds the gate and is looked at.
    failures = _count(cache, failures_key)
    if failures > app_settings.PASSWORD_DELAY_AFTER and not cache.add(
        f"otp_auth:pw:gate:{digest}:{until}", 1, GATE_SECONDS
    ):
        cache.decr(failures_key)
        if by_ip is not None:
            by_ip.release()
        wait = RateLimitedError(max(password_delay(failures - 1), 1), limit="password_delay")
        raise _password_refused(wait, request, username, digest, until)
    user = authenticate(request, username=username, password=password)
    if user is not None:
        if by_ip is not None:
            by_ip.release()
        cache.delete_many([failures_key, until_key, f"otp_auth:pw:gate:{digest}:0.0"])
        return user
    wait_seconds = password_delay(failures)
    if wait_seconds:
        cache.set(until_key, now + wait_seconds, PASSWORD_MEMORY)
    return None


def _count(cache: Any, key: str) -> int:
    """Increment ``key``, creating it at 1. A success elsewhere may delete the key between
    ``add`` and ``incr`` (``incr`` of a missing key raises): then it starts again."""
    for _ in range(3):
        cache.add(key, 0, PASSWORD_MEMORY)
        try:
            return int(cache.incr(key))
        except ValueError:
            continue
    return 1


def _password_refused(
    error: RateLimitedError,
    request: HttpRequest | None,
    username: str,
    subject: str,
    until: float = 0.0,
) -> RateLimitedError:
    """Report a refused password step: Django's signal every time, the audit row and our
    signal once per wait (a guessing script must not write a row per guess)."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    window = until or round(_now() + (error.retry_after or 0))
    if caches[app_settings.CACHE].add(
        f"otp_auth:pw:reported:{error.limit}:{subject}:{window}", 1, PASSWORD_MEMORY
    ):
        refused(error, request=request)
    return error


def serves_purpose(device: Device, purpose: str) -> bool:
    """Whether ``device`` can get a code for ``purpose``: one of its channels is enabled
    and, for email, ``EMAIL_CODES_FOR`` lists the purpose. Factor lists use it, so that
    nothing offers a device whose send would be refused."""
    enabled = app_settings.CHANNELS
    return any(
        channel in enabled and (channel != Channel.EMAIL or email_allowed_for(purpose))
        for channel in device.channels
    )


def email_allowed_for(purpose: str) -> bool:
    """Whether codes for ``purpose`` may go by email (``EMAIL_CODES_FOR``). Enrollment
    codes may whenever any purpose may: an address is proven before it serves."""
    allowed = app_settings.EMAIL_CODES_FOR
    return purpose in allowed or (purpose == Purpose.ENROLLMENT and bool(allowed))


def send_refusal(
    *,
    user: Any,
    device: Device,
    channel: str,
    request: HttpRequest | None,
    purpose: str = "",
) -> RateLimitedError | None:
    """Count one send of ``device`` over ``channel``; the refusal, if over a limit (or
    while the user is locked out). Writes nothing, so it may run inside a transaction
    that is about to roll back. Raises ``DeviceError`` for an email code whose purpose
    ``EMAIL_CODES_FOR`` leaves out."""
    if channel == Channel.EMAIL and purpose and not email_allowed_for(purpose):
        raise DeviceError()
    try:
        lockout.ensure_unlocked(user.pk)
        limits.take_all(
            limits.send_subjects(
                user_id=user.pk,
                channel=channel,
                destination=device.destination_for(channel),
                ip=client_ip(request),
                purpose=purpose,
            )
        )
    except RateLimitedError as exc:
        return exc
    return None


def before_send(
    *, user: Any, device: Device, channel: str, purpose: str, request: HttpRequest | None
) -> None:
    """``send_refusal``, reported and raised."""
    error = send_refusal(
        user=user, device=device, channel=channel, request=request, purpose=purpose
    )
    if error is not None:
        raise refused(
            error,
            user=user,
            request=request,
            purpose=purpose,
            channel=channel,
            destination=device.masked_destination,
        )


def before_verify(request: HttpRequest | None, *, user: Any = None) -> limits.Reservation:
    """Count one code check from the client's address. The caller releases the
    reservation when the code is accepted or was not judged, so that only refused
    codes stay counted."""
    ip = client_ip(request)
    if not ip:
        return limits.Reservation()
    try:
        return limits.take("verify_failures_per_ip", f"ip:{ip}")
    except RateLimitedError as exc:
        raise refused(exc, user=user, request=request) from None


def refused(
    error: RateLimitedError,
    *,
    user: Any = None,
    challenge: Challenge | None = None,
    request: HttpRequest | None = None,
    purpose: str = "",
    channel: str = "",
    destination: str = "",
) -> RateLimitedError:
    """Audit and signal ``error``; returns it, for ``raise refused(...)``."""
    audit.log(
        AuditEvent.Kind.RATE_LIMITED,
        user=user,
        challenge=challenge,
        request=request,
        reason=error.limit,
        detail="" if error.retry_after is None else f"retry_after={error.retry_after}",
        purpose=purpose,
        channel=channel,
        destination=destination,
    )
    rate_limited.send(
        sender=type(error),
        limit=error.limit,
        retry_after=error.retry_after,
        user=user if user is not None else getattr(challenge, "user", None),
        request=request,
    )
    if error.limit == "send_budget":
        _alert_budget(error)
    return error


def _alert_budget(error: RateLimitedError) -> None:
    # One log line per window, however many sends the tripped breaker refuses.
    seconds = error.retry_after or 60
    window_end = round((time.time() + seconds) / 60)
    if caches[app_settings.CACHE].add(f"otp_auth:alert:send_budget:{window_end}", 1, seconds):
        logger.error(
            "otp_auth: the SMS/voice send budget (RATE_LIMITS['send_budget']) is spent; "
            "SMS and voice codes are refused for the next %s s.",
            error.retry_after,
        )
