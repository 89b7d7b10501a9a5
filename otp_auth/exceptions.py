"""Exception tree. Every domain error carries a stable ``code`` that forms and APIs reuse.

``ConfigurationError`` derives from ``ImproperlyConfigured`` and stays outside
``OTPAuthError`` so that an ``except OTPAuthError`` in a view never hides a broken setup.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

__all__ = [
    "ChallengeError",
    "ChallengeLockedError",
    "ConfigurationError",
    "DeliveryError",
    "DeviceError",
    "FlowExpiredError",
    "InvalidCodeError",
    "InvalidDestinationError",
    "OTPAuthError",
    "OTPBackendPermissionDenied",
    "ProviderError",
    "ResendLimitError",
    "ResendTooSoonError",
    "SendCancelled",
    "StepUpRequiredError",
]


class ConfigurationError(ImproperlyConfigured):
    """A setting of ``OTP_AUTH`` is missing or wrong. The message names the key."""


class OTPAuthError(Exception):
    """Base class of every runtime error raised by ``otp_auth``."""

    code: str = "otp_error"
    default_message: str | Promise = _("The one-time code could not be processed.")

    def __init__(self, message: str | Promise | None = None, **context: Any) -> None:
        # Rendered now, in the active language of the request that raised it.
        self.message: str = str(message if message is not None else self.default_message)
        self.context = context
        super().__init__(self.message)


class ChallengeError(OTPAuthError):
    """A code was refused, or a challenge cannot be used."""

    code = "challenge_error"


class InvalidCodeError(ChallengeError):
    """Wrong, expired, already used or unknown: one public code and message for all four.

    The precise ``reason`` ("wrong", "expired", "used", "unknown", ...) stays server-side
    (audit and signals) so a client cannot tell them apart.
    """

    code = "invalid_code"
    default_message = _("That code is not valid. Check it and try again, or request a new one.")

    def __init__(self, reason: str = "wrong", **context: Any) -> None:
        self.reason = reason
        super().__init__(None, **context)


class ChallengeLockedError(ChallengeError):
    """The challenge reached its attempt limit; not even the right code is accepted now."""

    code = "challenge_locked"
    default_message = _(
        "Too many wrong codes. This code is now locked: start again to get a new one."
    )


class ResendTooSoonError(ChallengeError):
    """A resend came before the cooldown ended. ``retry_after`` is in whole seconds."""

    code = "resend_too_soon"
    default_message = _("Please wait before requesting another code.")

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(None, retry_after=retry_after)


class ResendLimitError(ChallengeError):
    """No more resends are allowed for this challenge."""

    code = "resend_limit"
    default_message = _("No more codes can be sent for this sign-in. Start again.")


class FlowExpiredError(ChallengeError):
    """The partial login (password done, code pending) outlived ``LOGIN_TIMEOUT``."""

    code = "flow_expired"
    default_message = _("Your sign-in took too long. Please start again.")


class StepUpRequiredError(OTPAuthError):
    """A sensitive action needs a fresh second factor first."""

    code = "step_up_required"
    default_message = _("Confirm it is you with a one-time code first.")


class DeviceError(OTPAuthError):
    """A device cannot be used for the requested operation."""

    code = "device_error"
    default_message = _("This device cannot receive codes.")


class InvalidDestinationError(DeviceError):
    """A phone number or email address is malformed or not allowed."""

    code = "invalid_destination"
    default_message = _("Enter a valid phone number or email address.")


class DeliveryError(OTPAuthError):
    """The code could not be delivered. The user sees only a generic message."""

    code = "delivery_failed"
    default_message = _("We could not send your code right now. Please try again later.")


class ProviderError(DeliveryError):
    """A provider refused or failed a request.

    Carries the provider name, HTTP status and a short, secret-free response excerpt so
    operators can diagnose it; none of it is shown to end users.
    """

    code = "provider_error"

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        provider: str = "",
        status: int | None = None,
        response: str = "",
        **context: Any,
    ) -> None:
        self.provider = provider
        self.status = status
        self.response = response[:500]
        super().__init__(message, **context)

    def __str__(self) -> str:
        parts = [str(self.message)]
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return " ".join(parts)


class SendCancelled(Exception):  # noqa: N818 - named like anymail's AnymailCancelSend
    """Raise from a ``pre_send`` receiver to skip delivery without an error."""


class OTPBackendPermissionDenied(PermissionDenied):
    """Stops Django's backend chain when a challenge is locked."""
