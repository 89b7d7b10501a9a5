"""Rate limits kept in Django's cache framework, shared by every process of the site.

Each limit is a set of fixed windows (``"5/h,10/d"``). An event is counted with
``cache.add(key, 0)`` followed by ``cache.incr(key)``: both are atomic on Redis,
Memcached and the local-memory cache, so N parallel requests get N distinct counts and
at most the limit of them pass, whatever the number of threads, processes or servers.
Nothing here reads a counter and writes it back.

Counters are keyed by an HMAC of the subject (user id, destination, address), so the
cache never holds a phone number or an address in clear.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from django.core.cache import BaseCache, caches
from django.utils.crypto import salted_hmac

from ..conf import app_settings
from ..constants import PHONE_CHANNELS, Purpose
from ..exceptions import RateLimitedError

__all__ = ["Reservation", "current", "forget", "send_subjects", "take", "take_all", "user_subjects"]

KEY_SALT = "otp_auth.services.limits"
# Counters outlive their window a little, so that no increment can land on a key that
# the cache has just expired (Redis would then recreate it without a timeout).
EXPIRY_SLACK = 60


def _cache() -> BaseCache:
    return caches[app_settings.CACHE]


def _key(name: str, subject: str, seconds: int, window: int) -> str:
    digest = salted_hmac(KEY_SALT, subject, algorithm="sha256").hexdigest()[:32]
    return f"otp_auth:rl:{name}:{seconds}:{window}:{digest}"


def _increment(cache: BaseCache, key: str, timeout: int) -> int:
    cache.add(key, 0, timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add() and incr(): start the window again
        cache.add(key, 0, timeout)
        return int(cache.incr(key))


@dataclass
class Reservation:
    """The counts one event added; ``release()`` takes them back (once)."""

    keys: list[str] = field(default_factory=list)

    def release(self) -> None:
        if not self.keys:
            return
        cache = _cache()
        for key in self.keys:
            # A window that ended meanwhile has nothing to give back.
            with contextlib.suppress(ValueError):
                cache.decr(key)
        self.keys = []


def take_all(subjects: Iterable[tuple[str, str]], *, now: float | None = None) -> Reservation:
    """Count one event for each ``(limit name, subject)``; all or nothing.

    Raises ``RateLimitedError`` (with ``retry_after`` until the full window ends) at the
    first count above its limit, after giving back what this call had counted: a refused
    event uses up no budget.
    """
    now = time.time() if now is None else now
    limits = app_settings.RATE_LIMITS
    cache = _cache()
    reservation = Reservation()
    for name, subject in subjects:
        for rate in limits[name]:
            window = int(now // rate.seconds)
            remaining = (window + 1) * rate.seconds - now
            key = _key(name, subject, rate.seconds, window)
            count = _increment(cache, key, math.ceil(remaining) + EXPIRY_SLACK)
            reservation.keys.append(key)
            if count > rate.limit:
                reservation.release()
                raise RateLimitedError(max(math.ceil(remaining), 1), limit=name)
    return reservation


def take(name: str, subject: str, *, now: float | None = None) -> Reservation:
    """``take_all`` for one limit."""
    return take_all([(name, subject)], now=now)


def current(name: str, subject: str, *, now: float | None = None) -> dict[str, int]:
    """The counts of ``subject`` in the running windows of limit ``name``, e.g.
    ``{"5/h": 2, "10/d": 7}``. For reports and tests: never for deciding."""
    now = time.time() if now is None else now
    cache = _cache()
    counts = {}
    for rate in app_settings.RATE_LIMITS[name]:
        key = _key(name, subject, rate.seconds, int(now // rate.seconds))
        counts[str(rate)] = int(cache.get(key, 0))
    return counts


def forget(subjects: Iterable[tuple[str, str]], *, now: float | None = None) -> int:
    """Drop the counts of the running windows of each ``(limit name, subject)``; how many
    counters held something. For an operator clearing limits (``otp_auth_reset_limits``),
    never for the request path."""
    now = time.time() if now is None else now
    limits = app_settings.RATE_LIMITS
    cache = _cache()
    keys = [
        _key(name, subject, rate.seconds, int(now // rate.seconds))
        for name, subject in subjects
        for rate in limits.get(name, ())
    ]
    held = sum(1 for value in cache.get_many(keys).values() if value)
    cache.delete_many(keys)
    return held


def user_subjects(
    user_id: object, destinations: Iterable[str], ips: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Every counter that can stop ``user_id``'s sign-ins and enrollments: theirs, their
    devices' destinations and the given client addresses."""
    subjects = [
        ("send_per_user", f"user:{user_id}"),
        ("enroll_send_per_user", f"user:{user_id}"),
        ("reset_per_account", f"user:{user_id}"),
    ]
    subjects += [("send_per_destination", f"to:{d.strip().lower()}") for d in destinations]
    for ip in ips:
        for name in (
            "send_per_ip",
            "enroll_send_per_ip",
            "password_failures_per_ip",
            "verify_failures_per_ip",
            "reset_per_ip",
        ):
            subjects.append((name, f"ip:{ip}"))
    return subjects


def calling_code(e164: str) -> str:
    """The country calling code of an E.164 number (``"233"``), ``""`` if unparsable."""
    try:
        return str(phonenumbers.parse(e164, None).country_code)
    except phonenumbers.NumberParseException:
        return ""


def send_subjects(
    *, user_id: object, channel: str, destination: str, ip: str | None, purpose: str = ""
) -> list[tuple[str, str]]:
    """What one send counts against, narrowest first: the user, the destination (any
    channel), the client address, and for SMS and voice the calling code and the
    site-wide budget. An enrollment code (to a number or address nobody has proven yet)
    also counts against the ``enroll_send_*`` limits. A password-reset code leaves out
    the client address: ``request_reset`` counts it for every request, with or without
    an account, so that the address budget says nothing about who has one."""
    subjects = [
        ("send_per_user", f"user:{user_id}"),
        ("send_per_destination", f"to:{destination.strip().lower()}"),
    ]
    if purpose == Purpose.ENROLLMENT:
        subjects.append(("enroll_send_per_user", f"user:{user_id}"))
    if ip and purpose != Purpose.PASSWORD_RESET:
        subjects.append(("send_per_ip", f"ip:{ip}"))
        if purpose == Purpose.ENROLLMENT:
            subjects.append(("enroll_send_per_ip", f"ip:{ip}"))
    if channel in PHONE_CHANNELS:
        code = calling_code(destination)
        if code:
            subjects.append(("send_per_calling_code", f"cc:{code}"))
        if purpose == Purpose.ENROLLMENT:
            subjects.append(("enroll_send_budget", "all"))
        subjects.append(("send_budget", "all"))
    return subjects
