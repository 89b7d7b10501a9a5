"""Exception tree. Every domain error carries a stable ``code`` that forms and APIs reuse.

``ConfigurationError`` derives from ``ImproperlyConfigured`` and stays outside
``OTPAuthError`` so that an ``except OTPAuthError`` in a view never hides a broken setup.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

__all__ = [
    "AccountLockedError",
    "ChallengeError",
    "ChallengeLockedError",
    "ConfigurationError",
    "CountryNotAllowedError",
    "DeliveryError",
    "DestinationBlockedError",
    "DeviceError",
    "FlowExpiredError",
    "InvalidCodeError",
    "InvalidDestinationError",
    "InvalidNumberError",
    "OTPAuthError",
    "OTPBackendPermissionDenied",
    "ProviderAccountError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderRejectedError",
    "ProviderResponseError",
    "ProviderRouteError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ResendLimitError",
    "ResendTooSoonError",
    "SendCancelled",
    "StepUpRequiredError",
    "WebAuthnRefusedError",
    "WebAuthnRegistrationError",
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


class WebAuthnRegistrationError(DeviceError):
    """A security key or passkey could not be registered: the ceremony is unknown, used or
    expired, or the authenticator's answer did not verify (origin, RP id, challenge)."""

    code = "webauthn_registration_failed"
    default_message = _("The security key or passkey could not be added. Please try again.")


class WebAuthnRefusedError(InvalidCodeError):
    """A security key's or passkey's answer was refused (wrong key, bad signature, an
    unknown or used challenge, a signature counter that went backwards): one public code
    and message for all; the precise ``reason`` stays server-side."""

    code = "webauthn_refused"
    default_message = _("That security key or passkey was not accepted. Please try again.")


class DeliveryError(OTPAuthError):
    """The code could not be delivered. The user sees only a generic message.

    ``attempts`` lists what each provider tried (see ``otp_auth.providers.routing``), so
    the audit trail keeps every attempt even when all of them failed.
    """

    code = "delivery_failed"
    default_message = _("We could not send your code right now. Please try again later.")
    attempts: tuple[Any, ...] = ()


class CountryNotAllowedError(DeliveryError):
    """The number belongs to a country outside ``ALLOWED_COUNTRIES``; nothing was sent."""

    code = "country_not_allowed"
    default_message = _("Phone numbers from this country are not supported.")


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
        vendor_code: str = "",
        **context: Any,
    ) -> None:
        self.provider = provider
        self.status = status
        self.response = response[:500]
        self.vendor_code = vendor_code
        # A provider's own words ("email delivery failed", a vendor's reason) are for
        # operators: users always get this class's default message, in their language.
        super().__init__(None, **context)
        #: What operators read (logs, audit); ``message`` is what users may be shown.
        self.detail = str(message) if message is not None else str(self.message)

    def __str__(self) -> str:
        parts = [self.detail]
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return " ".join(parts)


class ProviderUnavailableError(ProviderError):
    """The provider could not take the request: connection refused or reset before it was
    sent, a 5xx reply it documents as "not processed" (Twilio's 503), or an internal error
    it reported. Nothing was accepted, so another
    provider may be tried."""

    code = "provider_unavailable"


class ProviderTimeoutError(ProviderError):
    """No answer in time, the connection dropped after the request went out, or a server
    error (500, 502, 504...) that may come after the vendor accepted the message. The
    provider may have sent it, so it is not retried by default."""

    code = "provider_timeout"


class ProviderResponseError(ProviderError):
    """The provider answered with something we cannot read (malformed JSON, missing
    fields). Whether it accepted the message is unknown."""

    code = "provider_bad_response"


class ProviderRejectedError(ProviderError):
    """The provider understood the request and refused it; ``vendor_code`` says why."""

    code = "provider_rejected"


class _UserFacingProviderError(ProviderRejectedError):
    """Its ``message`` is always the user-facing default; the positional argument is the
    operator ``detail``."""

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail or None, **kwargs)


class InvalidNumberError(_UserFacingProviderError):
    """The provider says the number is invalid or cannot receive this channel.

    Unlike other delivery errors, its message is meant for the user (a form error).
    """

    code = "invalid_number"
    default_message = _("This number cannot receive codes. Check it, or use another one.")


class DestinationBlockedError(_UserFacingProviderError):
    """The provider refuses this destination: country not enabled, geo permissions, fraud
    protection or an opt-out."""

    code = "destination_blocked"
    default_message = _("Codes cannot be sent to this number. Use another one.")


class ProviderAccountError(ProviderRejectedError):
    """A problem with our account at the provider that only an operator can fix.

    ``reason`` is one of ``insufficient_funds``, ``authentication``, ``sender`` or
    ``configuration``. The user sees the generic message; operators get a log line at
    ERROR level and the ``delivery_failed`` signal.
    """

    code = "provider_account"

    def __init__(self, message: str | Promise | None = None, *, reason: str = "", **kw: Any):
        self.reason = reason
        super().__init__(message, **kw)


class ProviderRouteError(ProviderRejectedError):
    """This provider cannot reach this destination (from this sender, in this region),
    and says so before sending anything; another provider may. Routing fails over on it
    by default; alone, the user sees the generic delivery message."""

    code = "provider_route"


class ProviderRateLimitError(ProviderRejectedError):
    """The provider refused because of its rate or send limits; nothing was sent."""

    code = "provider_rate_limited"


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}
    minutes = -(-seconds // 60)
    if minutes < 120:
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    hours = -(-seconds // 3600)
    return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}


class RateLimitedError(OTPAuthError):
    """A limit of ``RATE_LIMITS`` (or the wait between refused codes) was reached: nothing
    was sent and no code was looked at. APIs answer 429 with ``Retry-After``.

    ``retry_after`` is in whole seconds (``None``: only an administrator can lift it);
    ``limit`` names the limit for the audit log and is not shown to users.
    """

    code = "rate_limited"
    default_message = _("Too many attempts. Please try again later.")
    wait_message = _("Too many attempts. Please try again in %(wait)s.")

    def __init__(self, retry_after: int | None = None, *, limit: str = "") -> None:
        self.retry_after = retry_after
        self.limit = limit
        message = None
        if retry_after is not None:
            message = str(self.wait_message) % {"wait": wait_text(max(int(retry_after), 1))}
        super().__init__(message, retry_after=retry_after, limit=limit)


class AccountLockedError(RateLimitedError):
    """Too many refused codes in a row: the user's second factor is locked until
    ``retry_after`` passes, or, when ``disabled``, until an administrator unlocks it."""

    code = "account_locked"
    default_message = _(
        "Too many wrong codes. Sign-in with a one-time code is locked: contact support."
    )
    wait_message = _("Too many wrong codes. Try again in %(wait)s.")

    def __init__(self, retry_after: int | None = None, *, disabled: bool = False) -> None:
        self.disabled = disabled
        super().__init__(None if disabled else retry_after, limit="account_locked")


class SendCancelled(Exception):  # noqa: N818 - named like anymail's AnymailCancelSend
    """Raise from a ``pre_send`` receiver to skip delivery without an error."""


class OTPBackendPermissionDenied(PermissionDenied):
    """Stops Django's backend chain when a challenge is locked."""
