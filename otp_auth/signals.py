"""Public signals. Receivers get ids and masked values only: never a code or a hash."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "account_locked",
    "account_unlocked",
    "audit_event",
    "challenge_issued",
    "challenge_failed",
    "challenge_locked",
    "challenge_verified",
    "circuit_closed",
    "circuit_opened",
    "delivery_failed",
    "delivery_status_changed",
    "epoch_advanced",
    "factor_added",
    "factor_failed",
    "factor_removed",
    "factor_verified",
    "post_send",
    "pre_send",
    "rate_limited",
    "password_reset_completed",
    "recovery_codes_generated",
]

#: A challenge was created and its code handed to a provider.
#: sender: ``Challenge``; kwargs: ``challenge``, ``request`` (may be None), ``resend`` (bool).
challenge_issued = Signal()

#: A code was accepted. sender: ``Challenge``; kwargs: ``challenge``, ``request``.
challenge_verified = Signal()

#: A code was refused. sender: ``Challenge``; kwargs: ``challenge`` (None when unknown),
#: ``reason`` ("wrong", "expired", "used", "unknown", "malformed", ...), ``request``.
challenge_failed = Signal()

#: A challenge reached its attempt limit. sender: ``Challenge``; kwargs: ``challenge``,
#: ``request``.
challenge_locked = Signal()

#: About to deliver. sender: provider class; kwargs: ``message`` (``OTPMessage``),
#: ``provider`` (instance). Raise ``otp_auth.exceptions.SendCancelled`` to skip delivery.
pre_send = Signal()

#: Delivery finished. sender: provider class; kwargs: ``message``, ``provider``,
#: ``result`` (``DeliveryResult``).
post_send = Signal()

#: A provider did not take a challenge's message (one call per failed attempt, so a
#: failover that ended well still reports the providers that failed). sender:
#: ``DeliveryAttempt``; kwargs: ``challenge``, ``attempt`` (its ``error_code`` is
#: ``"provider_account"`` for balance and credential problems that need an operator).
delivery_failed = Signal()

#: A delivery-status webhook moved an attempt forward. sender: ``DeliveryAttempt``;
#: kwargs: ``attempt``, ``status`` ("queued", "sent", "delivered" or "failed").
delivery_status_changed = Signal()

#: A provider alias failed ``FAILURES`` times in its window (or its half-open probe
#: failed): routing skips it for ``cool_off`` seconds, in every process. sender:
#: ``otp_auth.providers.health.CircuitState``; kwargs: ``alias``, ``failures``, ``error``
#: (the error code of the last failure), ``cool_off``, ``reopened`` (True after a probe).
circuit_opened = Signal()

#: A provider alias is used again. sender: ``CircuitState``; kwargs: ``alias``,
#: ``reason`` ("recovered": a probe went through; "reset": ``otp_auth_providers --reset``).
circuit_closed = Signal()

#: An audit row was written (every event of ``AuditEvent.Kind``), for alerting.
#: sender: ``AuditEvent``; kwargs: ``event`` (the saved row), ``request`` (may be None).
audit_event = Signal()

#: A limit refused a send or a code before anything was sent or checked. sender:
#: ``RateLimitedError``; kwargs: ``limit`` (a ``RATE_LIMITS`` key, ``"verify_delay"`` or
#: ``"account_locked"``), ``retry_after``, ``user`` (may be None), ``request``. The
#: site-wide ``send_budget`` sending it is the circuit breaker tripping.
rate_limited = Signal()

#: Refused codes in a row locked a user's second factor. sender: ``Lockout``; kwargs:
#: ``user``, ``lockout``, ``disabled`` (True at ``DISABLE_THRESHOLD``: only an
#: administrator can lift it), ``request``.
account_locked = Signal()

#: An administrator (or a recovery flow) lifted a lock. sender: ``Lockout``; kwargs:
#: ``user``, ``lockout``, ``actor`` (the staff user, may be None), ``request``.
account_unlocked = Signal()

#: A second factor was confirmed and added to an account. sender: the model class
#: (``Device`` or ``TOTPDevice``); kwargs: ``user``, ``factor`` (the row), ``label``
#: (masked), ``request`` (may be None).
factor_added = Signal()

#: A second factor was removed. sender: ``Device`` or ``TOTPDevice``; kwargs: ``user``,
#: ``label`` (masked), ``request`` (may be None).
factor_removed = Signal()

#: An authenticator or recovery code was accepted (sent codes use ``challenge_verified``).
#: sender: ``TOTPDevice`` or ``RecoveryCodeSet``; kwargs: ``user``, ``factor`` ("totp" or
#: "recovery"), ``remaining`` (recovery codes left, else None), ``request``.
factor_verified = Signal()

#: An authenticator or recovery code was refused. sender: ``TOTPDevice`` or
#: ``RecoveryCodeSet``; kwargs: ``user``, ``factor``, ``reason`` ("wrong", "used",
#: "malformed", "unknown", "unreadable"), ``request``.
factor_failed = Signal()

#: A new set of recovery codes replaced any earlier one. sender: ``RecoveryCodeSet``;
#: kwargs: ``user``, ``count``, ``replaced`` (True when an earlier set existed), ``request``.
recovery_codes_generated = Signal()

#: A password was reset with a one-time code. The user's other sessions, pending codes,
#: remembered browsers and DRF tokens are already revoked; connect here to revoke other
#: credentials (JWT refresh tokens, Knox tokens...). sender: ``PasswordReset``; kwargs:
#: ``user``, ``reset`` (the row), ``request`` (may be None).
password_reset_completed = Signal()

#: A user's account-security epoch moved (``otp_auth.services.epoch``): every session,
#: pending login, flow token, remembered browser, step-up and reset made before it no
#: longer counts, and the user's DRF token is already deleted (unless it made the
#: change). Connect here to end credentials otp_auth cannot see (JWT refresh tokens, Knox
#: tokens...). sender: ``SecurityEpoch``; kwargs: ``user``, ``epoch`` (the new value),
#: ``reason`` (an ``epoch.Reason``), ``request`` (may be None), ``keep_current`` (False
#: when the change also ends the credential that made it, as a password reset does).
epoch_advanced = Signal()
