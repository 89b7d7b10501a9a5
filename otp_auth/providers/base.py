"""Provider interface: neutral message and result types, and the template-method base.

Providers never see models. Two modes share the base:

* deliver-only: ``send(message)`` carries a code generated and hashed by ``otp_auth``;
* hosted verify: ``start(request)`` asks the vendor to generate and send a code, and
  ``check(reference, destination, code)`` asks it whether a code is right. Subclasses that
  implement these set ``hosted_verify = True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..exceptions import ConfigurationError, SendCancelled
from ..signals import post_send, pre_send

__all__ = [
    "BaseProvider",
    "DeliveryResult",
    "HostedVerification",
    "OTPMessage",
]


@dataclass(frozen=True)
class OTPMessage:
    """What to deliver. ``text`` contains the code, so it is kept out of ``repr``."""

    destination: str = field(repr=False)
    text: str = field(repr=False)
    channel: str
    purpose: str
    subject: str = field(default="", repr=False)
    html: str = field(default="", repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds the code in ``text`` stays valid: vendors that queue messages are told to
    #: drop them after it (Twilio's ``ValidityPeriod``). ``None``: not known.
    ttl: int | None = None


@dataclass(frozen=True)
class HostedVerification:
    """A hosted-verify request: the vendor generates the code, we never see it."""

    destination: str = field(repr=False)
    channel: str
    purpose: str
    code_length: int
    ttl: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of a send: ``status`` is one of queued, sent, delivered or cancelled."""

    provider: str
    status: str = "sent"
    reference: str = ""
    raw_status: str = ""

    def replace(self, **changes: Any) -> DeliveryResult:
        return dataclasses.replace(self, **changes)


class BaseProvider:
    """Base class of every provider.

    Subclasses set ``provider_name`` and implement ``deliver`` (deliver-only) and/or
    ``start`` and ``check`` (hosted verify). ``required_options`` names the ``OPTIONS``
    keys that must be present; a missing one raises ``ConfigurationError`` naming it.
    """

    provider_name: ClassVar[str] = "base"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "voice", "email"})
    hosted_verify: ClassVar[bool] = False
    #: Development-only providers (console, locmem) are refused by a check when DEBUG is off.
    insecure: ClassVar[bool] = False
    required_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, alias: str = "default", **options: Any) -> None:
        missing = [name for name in self.required_options if not options.get(name)]
        if missing:
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS'] is missing "
                f"{', '.join(repr(m) for m in missing)} for {type(self).__name__}."
            )
        self.alias = alias
        self.options = options

    def __repr__(self) -> str:
        # OPTIONS may hold API keys: never part of the repr.
        return f"<{type(self).__name__} alias={self.alias!r}>"

    def send(self, message: OTPMessage) -> DeliveryResult:
        """Deliver ``message``; fires ``pre_send`` (cancellable) and ``post_send``.

        Raises ``ProviderError`` (or a subclass) when the provider fails.
        """
        try:
            pre_send.send(sender=type(self), message=message, provider=self)
        except SendCancelled:
            return DeliveryResult(provider=self.provider_name, status="cancelled")
        result = self.deliver(message)
        post_send.send(sender=type(self), message=message, provider=self, result=result)
        return result

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        """Hand ``message`` to the transport. Implemented by deliver-only providers."""
        raise NotImplementedError(f"{type(self).__name__} must implement deliver()")

    def start(self, verification: HostedVerification) -> DeliveryResult:
        """Ask a hosted-verify vendor to generate and send a code."""
        raise NotImplementedError(f"{type(self).__name__} must implement start()")

    def code_characters(self, reference: str = "") -> str | None:
        """Characters the codes of this provider's challenge ``reference`` may contain:
        ``None`` when ``otp_auth`` generated them (``CODE_ALPHABET`` applies). Hosted
        verify vendors generate their own, from their own alphabet."""
        return None

    def check(self, reference: str, destination: str, code: str) -> bool:
        """Ask a hosted-verify vendor whether ``code`` is right. False for a wrong code;
        raises ``ProviderError`` when the vendor cannot answer."""
        raise NotImplementedError(f"{type(self).__name__} must implement check()")
