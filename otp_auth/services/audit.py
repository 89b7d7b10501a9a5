"""The audit log: one ``AuditEvent`` row per security event, and a signal for each.

Rows carry ids, the masked destination, the client address and a cleaned user agent,
and short reason words. No caller can put a code, a hash or a secret in a row: the
builder takes only those fields, and free text is stripped of control characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from ..models import AuditEvent, Challenge, DeliveryAttempt
from ..signals import audit_event, circuit_closed, circuit_opened, delivery_status_changed
from ..utils import client_ip, user_agent

__all__ = ["attach", "context", "event", "log", "reason_of", "record", "record_challenge"]

Kind = AuditEvent.Kind
Outcome = AuditEvent.Outcome

OUTCOMES: dict[str, str] = {
    Kind.CHALLENGE_ISSUED: Outcome.INFO,
    Kind.CODE_SENT: Outcome.SUCCESS,
    Kind.SEND_FAILED: Outcome.FAILURE,
    Kind.DELIVERED: Outcome.SUCCESS,
    Kind.DELIVERY_FAILED: Outcome.FAILURE,
    Kind.VERIFIED: Outcome.SUCCESS,
    Kind.FAILED: Outcome.FAILURE,
    Kind.EXPIRED: Outcome.FAILURE,
    Kind.CHALLENGE_LOCKED: Outcome.BLOCKED,
    Kind.CANCELLED: Outcome.INFO,
    Kind.RATE_LIMITED: Outcome.BLOCKED,
    Kind.ACCOUNT_LOCKED: Outcome.BLOCKED,
    Kind.FACTOR_DISABLED: Outcome.BLOCKED,
    Kind.UNLOCKED: Outcome.SUCCESS,
    Kind.FACTOR_ADDED: Outcome.SUCCESS,
    Kind.FACTOR_REMOVED: Outcome.INFO,
    Kind.RESET_REQUESTED: Outcome.INFO,
    Kind.CODE_LOGIN_REQUESTED: Outcome.INFO,
    Kind.RESET_COMPLETED: Outcome.SUCCESS,
    Kind.SIGNED_OUT_EVERYWHERE: Outcome.INFO,
    Kind.CIRCUIT_OPENED: Outcome.FAILURE,
    Kind.CIRCUIT_CLOSED: Outcome.SUCCESS,
}


def _clean(text: object, limit: int) -> str:
    """Printable characters only (no CR, LF or other controls), cut to ``limit``."""
    return "".join(ch for ch in str(text or "") if ch.isprintable())[:limit]


def _pk(user: Any) -> Any:
    return getattr(user, "pk", user)


def event(
    kind: str,
    *,
    user: Any = None,
    actor: Any = None,
    challenge: Challenge | None = None,
    request: HttpRequest | None = None,
    outcome: str | None = None,
    reason: str = "",
    detail: str = "",
    purpose: str = "",
    channel: str = "",
    destination: str = "",
) -> AuditEvent:
    """An unsaved row. ``user`` and ``actor`` may be instances or primary keys;
    ``challenge`` fills the user, purpose, channel and masked destination."""
    if challenge is not None:
        user = challenge.user_id if user is None else user
        purpose = purpose or challenge.purpose
        channel = channel or challenge.channel
        destination = destination or challenge.destination_masked
    return AuditEvent(
        kind=kind,
        outcome=outcome or OUTCOMES[kind],
        user_id=_pk(user),
        actor_id=_pk(actor),
        challenge_pk=challenge.pk if challenge is not None else None,
        purpose=_clean(purpose, 32),
        channel=_clean(channel, 16),
        destination=_clean(destination, 128),
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        reason=_clean(reason, 64),
        detail=_clean(detail, 255),
    )


def record(events: Iterable[AuditEvent], *, request: HttpRequest | None = None) -> list[AuditEvent]:
    """Save ``events`` in one query, then send ``audit_event`` for each."""
    rows = list(events)
    if len(rows) == 1:
        # bulk_create() wraps even one row in its own transaction: three statements.
        rows[0].save(force_insert=True)
    elif rows:
        AuditEvent.objects.bulk_create(rows)
    for row in rows:
        audit_event.send(sender=AuditEvent, event=row, request=request)
    return rows


def log(kind: str, *, request: HttpRequest | None = None, **fields: Any) -> AuditEvent:
    """Build and save one event."""
    (row,) = record([event(kind, request=request, **fields)], request=request)
    return row


def record_challenge(
    challenge: Challenge,
    kinds: Iterable[str | tuple[str, str]],
    *,
    request: HttpRequest | None = None,
) -> list[AuditEvent]:
    """Save one event per kind (``kind`` or ``(kind, reason)``) about ``challenge``."""
    events = []
    for item in kinds:
        kind, reason = item if isinstance(item, tuple) else (item, "")
        events.append(event(kind, challenge=challenge, request=request, reason=reason))
    return record(events, request=request)


# Events other parts of the package report through signals.


def _on_delivery_status(sender: Any, *, attempt: DeliveryAttempt, status: str, **kw: Any) -> None:
    kind = {"delivered": Kind.DELIVERED, "failed": Kind.DELIVERY_FAILED}.get(status)
    if kind is None:
        return
    challenge = Challenge.objects.filter(pk=attempt.challenge_id).first()
    if challenge is not None:
        record_challenge(challenge, [(kind, attempt.vendor_code or status)])


def attach(
    instance: Any, *, actor: Any = None, request: HttpRequest | None = None, reason: str = ""
) -> None:
    """Say who changes ``instance`` (a factor row), from which request and why (a short
    word such as ``imported``), for the audit row that its save or delete writes."""
    instance._otp_auth_audit = (actor, request)
    instance._otp_auth_audit_reason = reason


def reason_of(instance: Any) -> str:
    """The reason attached to ``instance`` by ``attach``, or ``""``."""
    found = getattr(instance, "_otp_auth_audit_reason", "")
    return found if isinstance(found, str) else ""


def context(instance: Any) -> tuple[Any, HttpRequest | None]:
    """``(actor, request)`` attached to ``instance``, or ``(None, None)``."""
    found = getattr(instance, "_otp_auth_audit", None)
    return found if isinstance(found, tuple) else (None, None)


def _on_circuit_opened(
    sender: Any, *, alias: str, failures: int, error: str, cool_off: int, **kw: Any
) -> None:
    cause = "probe failed" if kw.get("reopened") else f"{failures} failures"
    log(Kind.CIRCUIT_OPENED, reason=error, detail=f"{alias}: {cause}; skipped for {cool_off} s")


def _on_circuit_closed(sender: Any, *, alias: str, reason: str, **kw: Any) -> None:
    log(Kind.CIRCUIT_CLOSED, reason=reason, detail=alias)


def connect() -> None:
    """Connect the receiver above (from ``AppConfig.ready``). Factor rows are audited by
    ``services.factors``, whose receivers also advance the epoch."""
    delivery_status_changed.connect(_on_delivery_status, dispatch_uid="otp_auth.audit.status")
    circuit_opened.connect(_on_circuit_opened, dispatch_uid="otp_auth.audit.circuit+")
    circuit_closed.connect(_on_circuit_closed, dispatch_uid="otp_auth.audit.circuit-")
