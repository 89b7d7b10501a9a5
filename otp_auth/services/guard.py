"""The limits every send and every code check pass first, and the report of a refusal.

A refused send reaches no provider; a refused check looks at no code. Each refusal
writes a ``rate_limited`` audit row and sends the ``rate_limited`` signal, which is the
hook for alerts (the site-wide ``send_budget`` also logs an error once per window).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest

from ..conf import app_settings
from ..exceptions import RateLimitedError
from ..models import AuditEvent, Challenge, Device
from ..signals import rate_limited
from ..utils import client_ip
from . import audit, limits, lockout

__all__ = ["before_send", "before_verify", "refused", "send_refusal"]

logger = logging.getLogger("otp_auth")


def send_refusal(
    *, user: Any, device: Device, channel: str, request: HttpRequest | None
) -> RateLimitedError | None:
    """Count one send of ``device`` over ``channel``; the refusal, if over a limit (or
    while the user is locked out). Writes nothing, so it may run inside a transaction
    that is about to roll back."""
    try:
        lockout.ensure_unlocked(user.pk)
        limits.take_all(
            limits.send_subjects(
                user_id=user.pk,
                channel=channel,
                destination=device.destination_for(channel),
                ip=client_ip(request),
            )
        )
    except RateLimitedError as exc:
        return exc
    return None


def before_send(
    *, user: Any, device: Device, channel: str, purpose: str, request: HttpRequest | None
) -> None:
    """``send_refusal``, reported and raised."""
    error = send_refusal(user=user, device=device, channel=channel, request=request)
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
