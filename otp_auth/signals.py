"""Public signals. Receivers get ids and masked values only: never a code or a hash."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "challenge_issued",
    "challenge_failed",
    "challenge_locked",
    "challenge_verified",
    "post_send",
    "pre_send",
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
