"""A user's second factors as one list, the enrollment policy, and what follows a change.

Factors are sent-code devices (``Device``: SMS, voice, email), authenticator apps
(``TOTPDevice``), security keys and passkeys (``WebAuthnCredential``: one factor for all
of a user's keys, since one assertion names the key used) and recovery codes. The login
page offers them all; the default is the one used most recently, and recovery codes are
never the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.signals import post_delete, post_init, post_save
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..constants import Purpose
from ..exceptions import InvalidCodeError, OTPAuthError, RateLimitedError
from ..models import (
    AuditEvent,
    Device,
    RecoveryCode,
    RecoveryCodeSet,
    TOTPDevice,
    TrustedBrowser,
    WebAuthnCredential,
)
from ..signals import factor_added, factor_failed, factor_removed
from . import audit, epoch, guard, lockout, notify, trusted

__all__ = [
    "Factor",
    "confirmed_totp_devices",
    "connect",
    "factor_added_hook",
    "remove_factor",
    "has_confirmed_factor",
    "has_recovery_codes",
    "overview",
    "pending_user",
    "requires_enrollment",
    "audit_factor",
    "check_code",
    "user_factors",
    "webauthn_credentials",
    "webauthn_factor",
]


@dataclass(frozen=True)
class Factor:
    """One way to pass the second step, as the login page lists it."""

    key: str  # "device:<pk>", "totp:<pk>", "webauthn" or "recovery"
    kind: str  # "code", "totp", "webauthn" or "recovery"
    label: str  # masked, safe to show
    pk: int | None = None
    channel: str = ""


def confirmed_totp_devices(user_or_id: Any) -> list[TOTPDevice]:
    user_id = getattr(user_or_id, "pk", user_or_id)
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    return list(TOTPDevice.objects.filter(user_id=user_id, confirmed=True).order_by(*ordering))


def webauthn_credentials(user_or_id: Any) -> list[WebAuthnCredential]:
    user_id = getattr(user_or_id, "pk", user_or_id)
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    return list(WebAuthnCredential.objects.filter(user_id=user_id).order_by(*ordering))


def webauthn_factor(credentials: list[WebAuthnCredential]) -> Factor:
    """The one factor that stands for all of a user's security keys and passkeys."""
    label = credentials[0].label if len(credentials) == 1 else _("A security key or passkey")
    return Factor("webauthn", "webauthn", str(label))


def _last_used(row: Device | TOTPDevice | WebAuthnCredential) -> datetime:
    return row.last_used_at or datetime.min.replace(tzinfo=timezone.get_current_timezone())


def order_by_last_use(
    devices: list[Device], authenticators: list[TOTPDevice]
) -> list[Device | TOTPDevice]:
    """Most recently used first; on a tie the authenticator app (no message to send)."""
    rows: list[Device | TOTPDevice] = [*authenticators, *devices]
    return sorted(rows, key=_last_used, reverse=True)


def has_recovery_codes(user_or_id: Any) -> bool:
    user_id = getattr(user_or_id, "pk", user_or_id)
    return RecoveryCode.objects.filter(code_set__user_id=user_id, used_at__isnull=True).exists()


def user_factors(user_or_id: Any) -> list[Factor]:
    """Every confirmed factor, default first, recovery codes (if any are left) last."""
    user_id = getattr(user_or_id, "pk", user_or_id)
    ordering = (F("last_used_at").desc(nulls_last=True), "-created_at")
    devices = [
        d
        for d in Device.objects.confirmed().filter(user_id=user_id).order_by(*ordering)
        if guard.serves_purpose(d, Purpose.LOGIN)
    ]
    factors = []
    keys = webauthn_credentials(user_id)
    for row in order_by_last_use(devices, confirmed_totp_devices(user_id)):
        if keys and _last_used(keys[0]) >= _last_used(row):
            # Security keys come before a factor used no more recently (phishing-resistant).
            factors.append(webauthn_factor(keys))
            keys = []
        if isinstance(row, TOTPDevice):
            factors.append(Factor(f"totp:{row.pk}", "totp", row.label, row.pk))
        else:
            factors.append(
                Factor(f"device:{row.pk}", "code", row.label, row.pk, row.default_channel)
            )
    if keys:
        factors.append(webauthn_factor(keys))
    if has_recovery_codes(user_id):
        factors.append(Factor("recovery", "recovery", _("A recovery code")))
    return factors


def pending_user(user_id: str | int) -> Any:
    """The user of a pending login, or ``None`` if the account is gone."""
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(pk=user_id).first()


def overview(request: HttpRequest, user: Any) -> dict[str, Any]:
    """What the devices page shows beside sent-code devices."""
    code_set = RecoveryCodeSet.objects.filter(user=user).first()
    remaining = code_set.codes.filter(used_at__isnull=True).count() if code_set else 0
    browsers: list[TrustedBrowser] = []
    if app_settings.TRUSTED_BROWSERS:
        browsers = trusted.valid_records(user)
    return {
        "authenticators": confirmed_totp_devices(user),
        "webauthn_enabled": app_settings.WEBAUTHN,
        "webauthn_credentials": webauthn_credentials(user),
        "recovery_set": code_set,
        "recovery_remaining": remaining,
        "trusted_enabled": app_settings.TRUSTED_BROWSERS,
        "trusted_browsers": browsers,
        "this_browser": trusted.current_record_id(request, user) if browsers else None,
    }


def has_confirmed_factor(user: Any) -> bool:
    """True when the user can pass a second factor (a confirmed device or app, a
    security key or passkey)."""
    return (
        Device.objects.confirmed().for_user(user).exists()
        or TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or WebAuthnCredential.objects.filter(user=user).exists()
    )


def requires_enrollment(user: Any) -> bool:
    """Whether ``REQUIRE_ENROLLMENT`` sends this user to enrollment before anything else."""
    policy = app_settings.REQUIRE_ENROLLMENT
    if isinstance(policy, bool):
        return policy
    if policy == "staff":
        return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    return bool(policy(user))  # type: ignore[operator]


def audit_factor(
    kind: str,
    user: Any,
    factor: str,
    *,
    request: HttpRequest | None,
    reason: str = "",
    actor: Any = None,
    **extra: Any,
) -> None:
    """One audit row about an authenticator app or recovery codes (sent-code devices are
    audited by ``services.audit``). Never a code or a seed: only names and counts."""
    detail = " ".join([f"factor={factor}", *(f"{k}={v}" for k, v in extra.items())])
    audit.log(kind, user=user, actor=actor, request=request, reason=reason, detail=detail)


R = TypeVar("R")


def check_code(
    user: Any,
    *,
    factor: str,
    now: datetime,
    request: HttpRequest | None,
    lock_row: Callable[[], R | None],
    judge: Callable[[R, datetime], tuple[OTPAuthError | None, str]],
) -> R:
    """Judge a code of an authenticator app or a recovery code, under the same limits
    and counters as sent codes.

    Inside one transaction: ``lock_row()`` locks and returns the factor's row (``None``:
    the user has no such factor), then the user's ``Lockout`` row is locked; while it
    refuses (a lock, or the wait after refused codes), no code is looked at. ``judge``
    compares the code and saves what success changes on the row; it returns ``(None,
    "")`` or ``(error, reason)``. A refused code counts toward the lockout and the
    per-address limit, is audited and signalled; an accepted one clears the count.
    """
    reservation = guard.before_verify(request, user=user)
    error: OTPAuthError | None = None
    reason = lock_started = ""
    state = None
    with transaction.atomic():
        row = lock_row()
        if row is None:
            error, reason = InvalidCodeError("unknown"), "unknown"
        else:
            state = lockout.acquire(user.pk)
            error = lockout.refusal(state, now)
            if error is None:
                error, reason = judge(row, now)
                if error is None:
                    lockout.record_success(state)
                elif reason != "unreadable":
                    lock_started = lockout.record_failure(state, now) or ""
    if error is None:
        assert row is not None
        reservation.release()  # an accepted code is not a failure from this address
        return row
    if isinstance(error, RateLimitedError) or reason == "unreadable":
        reservation.release()  # no code was judged
    if isinstance(error, RateLimitedError):
        raise guard.refused(error, user=user, request=request)
    senders = {"totp": TOTPDevice, "webauthn": WebAuthnCredential}
    sender = senders.get(factor, RecoveryCodeSet)
    factor_failed.send(sender=sender, user=user, factor=factor, reason=reason, request=request)
    audit_factor(AuditEvent.Kind.FAILED, user, factor, request=request, reason=reason)
    if lock_started and state is not None:
        audit.log(lock_started, user=user, request=request, reason="consecutive_failures")
        lockout.announce(state, lock_started, request=request)
    raise error


def factor_added_hook(
    request: HttpRequest | None,
    user: Any,
    factor: Device | TOTPDevice | WebAuthnCredential,
    *,
    actor: Any = None,
) -> None:
    """After a service confirmed a factor: tell the user, signal. (The audit row and the
    epoch advance come from the save itself, ``_on_factor_saved``.)"""
    notify.notify(user, "factor_added", request=request, factor=factor.label)
    factor_added.send(
        sender=type(factor), user=user, factor=factor, label=factor.label, request=request
    )


def remove_factor(
    factor: Device | TOTPDevice | WebAuthnCredential,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
) -> None:
    """Delete a factor row the way every path must: audited (with the ``actor``, when
    staff acted), the epoch advanced, the owner told, ``factor_removed`` sent. Callers
    apply the factor-change policy first (``services.policy``)."""
    user = factor.user
    audit.attach(factor, actor=actor, request=request)
    factor.delete()  # _on_factor_deleted audits and advances the epoch
    if factor.confirmed:
        notify.notify(user, "factor_removed", request=request, factor=factor.label)
        factor_removed.send(sender=type(factor), user=user, label=factor.label, request=request)


def _changed(instance: Device | TOTPDevice, kind: str, reason: str) -> tuple[Any, Any]:
    """One audit row (with the actor and request the service attached) and an epoch
    advance for a factor row that was added or removed; returns ``(actor, request)``."""
    actor, request = audit.context(instance)
    why = audit.reason_of(instance)
    if isinstance(instance, TOTPDevice):
        audit_factor(kind, instance.user_id, "totp", request=request, actor=actor, reason=why)
    else:
        audit.log(
            kind,
            user=instance.user_id,
            actor=actor,
            request=request,
            reason=why,
            channel=instance.default_channel,
            destination=instance.masked_destination,
        )
    epoch.advance(instance.user, reason=reason, request=request)
    trusted.forget_all(instance.user)  # housekeeping: the epoch already refuses them
    return actor, request


def _on_factor_deleted(sender: Any, *, instance: Device | TOTPDevice, **kw: Any) -> None:
    """Any deletion of a confirmed factor, whatever the path (a service, the admin, a
    shell's ``QuerySet.delete()``): one audit row and an epoch advance. A factor deleted
    along with its user leaves nothing: the user is going."""
    origin = kw.get("origin")
    origin_model = origin.model if isinstance(origin, QuerySet) else type(origin)
    if not instance.confirmed or (origin is not None and origin_model is not sender):
        return
    actor, request = _changed(instance, AuditEvent.Kind.FACTOR_REMOVED, epoch.Reason.FACTOR_REMOVED)
    if not has_confirmed_factor(instance.user):
        # Recovery codes back up a factor; alone they would guard nothing at sign-in
        # and yet stand in the way of adding a new factor.
        from .recovery import delete_codes

        delete_codes(instance.user, request=request, actor=actor)


def _on_factor_loaded(sender: Any, *, instance: Device | TOTPDevice, **kw: Any) -> None:
    # Through __dict__: a deferred field must not cost a query per row.
    instance._otp_auth_was_confirmed = bool(instance.pk) and bool(  # type: ignore[union-attr]
        instance.__dict__.get("confirmed", False)
    )


def _on_factor_saved(
    sender: Any, *, instance: Device | TOTPDevice, created: bool, **kw: Any
) -> None:
    """A factor that became confirmed, whatever the path (a service, a shell, a fixture):
    one audit row and an epoch advance. The service that confirmed it tells the user."""
    was = getattr(instance, "_otp_auth_was_confirmed", False)
    instance._otp_auth_was_confirmed = instance.confirmed  # type: ignore[union-attr]
    if not instance.confirmed or (was and not created):
        return
    _changed(instance, AuditEvent.Kind.FACTOR_ADDED, epoch.Reason.FACTOR_ADDED)


def _on_key_saved(sender: Any, *, instance: WebAuthnCredential, created: bool, **kw: Any) -> None:
    """A security key or passkey registered, whatever the path: one audit row and an
    epoch advance. (A row is made only by a successful ceremony; later saves record its
    use and change nothing about the account.)"""
    if not created:
        return
    actor, request = audit.context(instance)
    audit_factor(
        AuditEvent.Kind.FACTOR_ADDED, instance.user_id, "webauthn", request=request, actor=actor
    )
    epoch.advance(instance.user, reason=epoch.Reason.FACTOR_ADDED, request=request)
    trusted.forget_all(instance.user)


def _on_key_deleted(sender: Any, *, instance: WebAuthnCredential, **kw: Any) -> None:
    """Like ``_on_factor_deleted``, for a security key or passkey."""
    origin = kw.get("origin")
    origin_model = origin.model if isinstance(origin, QuerySet) else type(origin)
    if origin is not None and origin_model is not sender:
        return
    actor, request = audit.context(instance)
    audit_factor(
        AuditEvent.Kind.FACTOR_REMOVED, instance.user_id, "webauthn", request=request, actor=actor
    )
    epoch.advance(instance.user, reason=epoch.Reason.FACTOR_REMOVED, request=request)
    trusted.forget_all(instance.user)
    if not has_confirmed_factor(instance.user):
        from .recovery import delete_codes

        delete_codes(instance.user, request=request, actor=actor)


def connect() -> None:
    """Connect the receivers above (from ``AppConfig.ready``)."""
    for model in (Device, TOTPDevice):
        name = model.__name__
        post_init.connect(_on_factor_loaded, sender=model, dispatch_uid=f"otp_auth.f0-{name}")
        post_save.connect(_on_factor_saved, sender=model, dispatch_uid=f"otp_auth.f+-{name}")
        post_delete.connect(_on_factor_deleted, sender=model, dispatch_uid=f"otp_auth.f--{name}")
    key = WebAuthnCredential
    post_save.connect(_on_key_saved, sender=key, dispatch_uid="otp_auth.f+-WebAuthnCredential")
    post_delete.connect(_on_key_deleted, sender=key, dispatch_uid="otp_auth.f--WebAuthnCredential")
