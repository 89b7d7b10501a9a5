"""Shared provider health: one circuit breaker per provider alias, kept in the cache.

A vendor that is down should cost one timeout per cool-off, not one per login. So each
send or start through a routing provider reports to this module whether the vendor
answered, and every process (and every server sharing ``OTP_AUTH["CACHE"]``) reads the
same state:

* **closed**: the alias is used. Failures (no connection, a timeout, a server error, a
  reply we cannot read, an account problem) are counted for ``WINDOW`` seconds; a success
  clears the count. ``FAILURES`` of them open the circuit.
* **open**: routing skips the alias for ``COOL_OFF`` seconds and goes straight to the
  next one.
* **half-open**: after the cool-off, exactly one send is let through as a probe (an atomic
  ``cache.add``, so one process in the whole fleet wins). Its success closes the circuit;
  its failure opens it for another cool-off. If the probe never reports (its worker died),
  another probe is allowed one cool-off later.

A refusal about one user's number (invalid number, blocked destination, the vendor's rate
limit) means the vendor is up, and counts as a success. Opening and closing send the
``circuit_opened`` and ``circuit_closed`` signals, which the audit log records.

Per alias settings live next to ``BACKEND``:
``"CIRCUIT": {"FAILURES": 5, "WINDOW": 60, "COOL_OFF": 30}`` (the defaults, see
``otp_auth.conf.CIRCUIT_DEFAULTS``); ``"FAILURES": 0`` turns the breaker off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import BaseCache, caches

from ..conf import Circuit, app_settings
from ..exceptions import (
    DeliveryError,
    ProviderAccountError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from ..signals import circuit_closed, circuit_opened

__all__ = [
    "CIRCUIT_OPEN",
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "CircuitState",
    "Ticket",
    "admit",
    "counts_against",
    "force",
    "least_recently_opened",
    "record",
    "reset",
    "state",
]

logger = logging.getLogger("otp_auth")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

#: ``error_code`` of the attempt row routing writes for an alias it skipped.
CIRCUIT_OPEN = "circuit_open"

#: An open circuit is forgotten after a day without news (the cache entry expires).
_OPEN_TTL = 86_400

_UNHEALTHY = (
    ProviderUnavailableError,
    ProviderTimeoutError,
    ProviderResponseError,
    ProviderAccountError,
)


def _now() -> float:
    """Wall-clock seconds: shared by every server, unlike ``time.monotonic()``."""
    return time.time()


def _cache() -> BaseCache:
    return caches[app_settings.CACHE]


def _key(alias: str, part: str) -> str:
    return f"otp_auth:circuit:{alias}:{part}"


@dataclass(frozen=True)
class CircuitState:
    """What every process knows about one alias: for the command and the admin."""

    alias: str
    state: str
    failures: int
    opened_at: float | None
    settings: Circuit

    @property
    def reopens_at(self) -> float | None:
        """When a probe may go through (``None`` when closed)."""
        if self.opened_at is None:
            return None
        return self.opened_at + self.settings.cool_off


@dataclass(frozen=True)
class Ticket:
    """Permission to call an alias, and how the result must be reported.

    ``kind`` is ``closed`` (normal use), ``probe`` (the one half-open trial) or
    ``forced`` (every alias was open; this one was tried anyway).
    """

    alias: str
    kind: str


def counts_against(exc: BaseException) -> bool:
    """True when ``exc`` says the vendor is unwell, not that one message was refused."""
    if isinstance(exc, _UNHEALTHY):
        return True
    # A provider bug (not a DeliveryError) tells nothing good about the vendor either.
    return not isinstance(exc, DeliveryError)


def state(alias: str) -> CircuitState:
    """The shared state of ``alias``."""
    settings = app_settings.circuit(alias)
    values = _cache().get_many([_key(alias, "failures"), _key(alias, "opened")])
    failures = int(values.get(_key(alias, "failures")) or 0)
    opened = values.get(_key(alias, "opened"))
    if opened is None:
        return CircuitState(alias, CLOSED, failures, None, settings)
    opened_at = float(opened)
    now = _now()
    current = OPEN if now < opened_at + settings.cool_off else HALF_OPEN
    return CircuitState(alias, current, failures, opened_at, settings)


def admit(alias: str) -> Ticket | None:
    """A ticket to call ``alias`` now, or ``None`` while its circuit is open.

    Costs one cache read while the circuit is closed.
    """
    settings = app_settings.circuit(alias)
    if not settings.enabled:
        return Ticket(alias, CLOSED)
    cache = _cache()
    opened = cache.get(_key(alias, "opened"))
    if opened is None:
        return Ticket(alias, CLOSED)
    if _now() < float(opened) + settings.cool_off:
        return None
    # Half-open: the first process to add the probe key is the one probe.
    if cache.add(_key(alias, "probe"), 1, timeout=settings.cool_off):
        return Ticket(alias, "probe")
    return None


def least_recently_opened(aliases: Iterable[str]) -> str | None:
    """Of ``aliases`` (all open), the one opened longest ago: the likeliest to be back."""
    candidates = list(dict.fromkeys(aliases))
    if not candidates:
        return None
    keys = {alias: _key(alias, "opened") for alias in candidates}
    values = _cache().get_many(list(keys.values()))
    return min(candidates, key=lambda alias: float(values.get(keys[alias]) or 0))


def force(alias: str) -> Ticket:
    """A ticket for an open alias, used when every alias of a route is open."""
    return Ticket(alias, "forced")


def record(ticket: Ticket, error: BaseException | None = None) -> None:
    """Report the outcome of a call made with ``ticket``: ``error`` is what it raised."""
    settings = app_settings.circuit(ticket.alias)
    if not settings.enabled:
        return
    if error is None or not counts_against(error):
        _success(ticket)
    else:
        _failure(ticket, settings, getattr(error, "code", "provider_crashed"))


def _success(ticket: Ticket) -> None:
    cache = _cache()
    alias = ticket.alias
    if ticket.kind == CLOSED:
        cache.delete(_key(alias, "failures"))
        return
    # A probe (or a forced try) that worked closes the circuit for every process.
    was_open = cache.get(_key(alias, "opened")) is not None
    cache.delete_many([_key(alias, "opened"), _key(alias, "probe"), _key(alias, "failures")])
    if was_open:
        logger.warning("otp_auth: provider %r is answering again; circuit closed", alias)
        circuit_closed.send(sender=CircuitState, alias=alias, reason="recovered")


def _failure(ticket: Ticket, settings: Circuit, error: str) -> None:
    cache = _cache()
    alias = ticket.alias
    if ticket.kind != CLOSED:
        # The probe failed: another cool-off, starting now.
        cache.set(_key(alias, "opened"), _now(), timeout=_OPEN_TTL)
        cache.delete(_key(alias, "probe"))
        _opened(alias, settings, settings.failures, error, reopened=True)
        return
    key = _key(alias, "failures")
    cache.add(key, 0, timeout=settings.window)
    try:
        count = cache.incr(key)
    except ValueError:
        # The window ended between add() and incr(): this failure starts a new one.
        cache.add(key, 1, timeout=settings.window)
        count = 1
    if count < settings.failures:
        return
    # Several processes may see the threshold at once; add() lets one of them open it.
    if cache.add(_key(alias, "opened"), _now(), timeout=_OPEN_TTL):
        cache.delete(key)
        _opened(alias, settings, count, error, reopened=False)


def _opened(alias: str, settings: Circuit, failures: int, error: str, *, reopened: bool) -> None:
    logger.error(
        "otp_auth: provider %r circuit opened after %s (%s); skipped for %d s",
        alias,
        "a failed probe" if reopened else f"{failures} failures",
        error,
        settings.cool_off,
    )
    circuit_opened.send(
        sender=CircuitState,
        alias=alias,
        failures=failures,
        error=error,
        cool_off=settings.cool_off,
        reopened=reopened,
    )


def reset(alias: str) -> bool:
    """Close ``alias``'s circuit by hand; True when it was open or half-open."""
    cache = _cache()
    was_open = cache.get(_key(alias, "opened")) is not None
    cache.delete_many([_key(alias, "opened"), _key(alias, "probe"), _key(alias, "failures")])
    if was_open:
        circuit_closed.send(sender=CircuitState, alias=alias, reason="reset")
    return was_open
