"""Routing and failover: a provider that hands each message to other providers in turn.

Configure it like any provider, with the aliases of the providers it wraps::

    OTP_AUTH = {
        "PROVIDERS": {
            "default": {
                "BACKEND": "otp_auth.providers.routing.SMSProvider",
                "OPTIONS": {
                    "routes": {
                        "sms": {"+233": ["arkesel", "twilio"], "*": ["twilio", "arkesel"]},
                        "voice": ["twilio"],
                    },
                },
            },
            "arkesel": {"BACKEND": "otp_auth.providers.arkesel.SMSProvider", ...},
            "twilio": {"BACKEND": "otp_auth.providers.twilio.SMSProvider", ...},
        },
    }

``routes`` maps a channel (or ``"*"`` for any channel) to either a list of aliases or a
dict from an E.164 calling-code prefix (``"+233"``, ``"+1876"``; the longest match wins)
or ``"*"`` to a list of aliases. ``providers: [...]`` is short for one list for everything.

The next alias is tried only when the previous one certainly did not take the message
(``ProviderUnavailableError``: connection refused, 5xx, vendor internal error) or could
not take it for account reasons (``ProviderAccountError``: no balance, bad credentials)
or cannot reach this destination (``ProviderRouteError``: Twilio's 21612, say).
After a read timeout the message may already be on its way and no vendor accepts an
idempotency key, so nothing is retried unless ``failover_on_timeout`` is True.
``failover_on`` (a list of error codes) replaces the default list.

Each member's circuit breaker (``otp_auth.providers.health``, shared through the cache)
is read before it is called: an alias whose circuit is open is skipped, with a
``skipped`` attempt row, and the next one is tried at once. When every member is open,
the one opened longest ago is tried anyway (its result counts as the probe), so that a
site never refuses logins only because its vendors failed a while ago.

``SMSProvider`` wraps deliver-only providers; ``VerifyProvider`` wraps hosted-verify
providers and remembers, in the challenge's reference, which one sent the code so the
check goes to the same vendor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from django.utils.module_loading import import_string

from ..conf import app_settings
from ..exceptions import (
    ConfigurationError,
    DeliveryError,
    ProviderAccountError,
    ProviderError,
    ProviderResponseError,
    ProviderRouteError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from . import health
from .base import BaseProvider, DeliveryResult, HostedVerification, OTPMessage

__all__ = ["Attempt", "RoutedResult", "SMSProvider", "VerifyProvider"]

logger = logging.getLogger("otp_auth")

DEFAULT_FAILOVER_ON = (
    ProviderUnavailableError.code,
    ProviderAccountError.code,
    ProviderRouteError.code,
)


@dataclass(frozen=True)
class Attempt:
    """What one provider did with one message: the audit row, before it is saved.

    ``outcome`` is ``accepted``, ``failed`` (nothing was sent), ``unknown`` (no answer:
    the vendor may have sent it) or ``skipped`` (its circuit was open; not called).
    Never holds a destination, a code or a credential.
    """

    alias: str
    provider: str
    outcome: str
    error: str = ""
    vendor_code: str = ""
    http_status: int | None = None
    reference: str = ""
    status: str = ""
    raw_status: str = ""
    detail: str = ""

    @classmethod
    def from_result(cls, alias: str, result: DeliveryResult) -> Attempt:
        return cls(
            alias=alias,
            provider=result.provider,
            outcome="accepted",
            reference=result.reference,
            status=result.status,
            raw_status=result.raw_status,
        )

    @classmethod
    def skipped(cls, alias: str, provider: BaseProvider) -> Attempt:
        """An alias routing did not call because its circuit is open: nothing was sent."""
        return cls(
            alias=alias,
            provider=provider.provider_name,
            outcome="skipped",
            error=health.CIRCUIT_OPEN,
            detail="circuit open",
        )

    @classmethod
    def from_error(cls, alias: str, provider: BaseProvider, exc: BaseException) -> Attempt:
        unknown = isinstance(exc, ProviderTimeoutError | ProviderResponseError) or not isinstance(
            exc, DeliveryError
        )
        if isinstance(exc, ProviderError):
            return cls(
                alias=alias,
                provider=exc.provider or provider.provider_name,
                outcome="unknown" if unknown else "failed",
                error=exc.code,
                vendor_code=exc.vendor_code,
                http_status=exc.status,
                detail=exc.detail[:128],
            )
        return cls(
            alias=alias,
            provider=provider.provider_name,
            outcome="unknown" if unknown else "failed",
            error=getattr(exc, "code", "provider_crashed"),
            detail=type(exc).__name__,
        )


@dataclass(frozen=True)
class RoutedResult(DeliveryResult):
    """A ``DeliveryResult`` that also says which alias sent it and what each tried."""

    alias: str = ""
    attempts: tuple[Attempt, ...] = ()


def _validate_route_list(owner: str, value: Any) -> list[str]:
    if (
        isinstance(value, str)
        or not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(a, str) and a for a in value)
    ):
        raise ConfigurationError(f"{owner} must be a non-empty list of provider aliases.")
    return list(value)


class _Router(BaseProvider):
    provider_name: ClassVar[str] = "routing"

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        where = f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']"
        self.routes = self._parse_routes(where, options)
        failover_on = options.get("failover_on", DEFAULT_FAILOVER_ON)
        if isinstance(failover_on, str) or not isinstance(failover_on, list | tuple):
            raise ConfigurationError(f"{where}['failover_on'] must be a list of error codes.")
        self.failover_on = set(failover_on)
        if options.get("failover_on_timeout", False):
            self.failover_on.add(ProviderTimeoutError.code)
        self._check_members(where)

    @staticmethod
    def _parse_routes(where: str, options: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
        raw = options.get("routes")
        if raw is None and "providers" in options:
            raw = {"*": options["providers"]}
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigurationError(
                f"{where} needs 'routes' (channel -> aliases) or 'providers' (a list)."
            )
        routes: dict[str, dict[str, list[str]]] = {}
        for channel, table in raw.items():
            owner = f"{where}['routes'][{channel!r}]"
            if not isinstance(table, Mapping):
                table = {"*": table}
            parsed: dict[str, list[str]] = {}
            for prefix, aliases in table.items():
                if prefix != "*" and not (
                    isinstance(prefix, str) and prefix[:1] == "+" and prefix[1:].isdigit()
                ):
                    raise ConfigurationError(
                        f"{owner} keys must be '*' or a calling-code prefix like '+233'."
                    )
                parsed[prefix] = _validate_route_list(f"{owner}[{prefix!r}]", aliases)
            routes[str(channel)] = parsed
        return routes

    def _check_members(self, where: str) -> None:
        configured = app_settings.PROVIDERS
        for table in self.routes.values():
            for aliases in table.values():
                for member in aliases:
                    if member == self.alias or member not in configured:
                        raise ConfigurationError(
                            f"{where}['routes'] names {member!r}, which is not another alias "
                            "of OTP_AUTH['PROVIDERS']."
                        )
                    try:
                        cls = import_string(configured[member]["BACKEND"])
                    except ImportError as exc:
                        raise ConfigurationError(
                            f"OTP_AUTH['PROVIDERS']['{member}']['BACKEND'] cannot be imported."
                        ) from exc
                    if isinstance(cls, type) and issubclass(cls, _Router):
                        raise ConfigurationError(
                            f"{where}['routes'] names {member!r}, another routing provider; "
                            "list the vendor aliases directly."
                        )
                    if getattr(cls, "hosted_verify", False) != self.hosted_verify:
                        mode = "hosted-verify" if self.hosted_verify else "deliver-only"
                        raise ConfigurationError(
                            f"{where}['routes'] names {member!r}, which is not {mode}; "
                            f"{type(self).__module__}.{type(self).__name__} only wraps "
                            f"{mode} providers."
                        )

    def route(self, channel: str, destination: str) -> list[str]:
        """The aliases to try, in order, for ``channel`` and ``destination``."""
        table = self.routes.get(channel) or self.routes.get("*") or {}
        best = ""
        for prefix in table:
            if prefix != "*" and destination.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return list(table.get(best or "*", []))

    def _run(
        self,
        channel: str,
        destination: str,
        call: Callable[[BaseProvider], DeliveryResult],
    ) -> RoutedResult:
        from . import get_provider

        attempts: list[Attempt] = []
        last_error: DeliveryError | None = None
        skipped: list[str] = []
        members = [
            (alias, get_provider(alias))
            for alias in self.route(channel, destination)
            if channel in get_provider(alias).channels
        ]
        for member_alias, member in members:
            ticket = health.admit(member_alias)
            if ticket is None:
                skipped.append(member_alias)
                attempts.append(Attempt.skipped(member_alias, member))
                continue
            outcome = self._try(ticket, member, call, attempts)
            if isinstance(outcome, RoutedResult):
                return outcome
            last_error, go_on = outcome
            if not go_on:
                break
        else:
            if skipped and len(skipped) == len(members):
                # Every circuit is open: refusing outright would fail every login until
                # the first cool-off ends, so the one opened longest ago is tried anyway.
                forced = health.least_recently_opened(skipped)
                if forced is not None:
                    member = dict(members)[forced]
                    outcome = self._try(health.force(forced), member, call, attempts)
                    if isinstance(outcome, RoutedResult):
                        return outcome
                    last_error = outcome[0]
        if last_error is None:
            last_error = ProviderAccountError(
                f"no provider routed for channel {channel!r}",
                reason="configuration",
                provider=self.provider_name,
            )
        last_error.attempts = tuple(attempts)
        raise last_error

    def _try(
        self,
        ticket: health.Ticket,
        member: BaseProvider,
        call: Callable[[BaseProvider], DeliveryResult],
        attempts: list[Attempt],
    ) -> RoutedResult | tuple[DeliveryError, bool]:
        """Call one member; the result, or the error and whether the next may be tried."""
        member_alias = ticket.alias
        try:
            result = call(member)
        except DeliveryError as exc:
            health.record(ticket, exc)
            attempts.append(Attempt.from_error(member_alias, member, exc))
            if exc.code in self.failover_on:
                logger.warning(
                    "otp_auth: %r failed over from %r: %s", self.alias, member_alias, exc
                )
                return exc, True
            return exc, False
        except Exception as exc:
            # A provider bug: whether it sent anything is unknown, so stop here.
            health.record(ticket, exc)
            attempts.append(Attempt.from_error(member_alias, member, exc))
            error = ProviderError(
                f"provider raised {type(exc).__name__}", provider=member.provider_name
            )
            error.__cause__ = exc
            return error, False
        if not isinstance(result, DeliveryResult):
            error = ProviderResponseError(
                "provider returned no DeliveryResult", provider=member.provider_name
            )
            health.record(ticket, error)
            attempts.append(Attempt.from_error(member_alias, member, error))
            return error, False
        health.record(ticket)
        attempts.append(Attempt.from_result(member_alias, result))
        return RoutedResult(
            provider=result.provider,
            status=result.status,
            reference=self.wrap_reference(member_alias, result.reference),
            raw_status=result.raw_status,
            alias=member_alias,
            attempts=tuple(attempts),
        )

    def wrap_reference(self, alias: str, reference: str) -> str:
        return reference


class SMSProvider(_Router):
    """Routes deliver-only sends (SMS, voice, email) across deliver-only providers."""

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        return self._run(message.channel, message.destination, lambda p: p.deliver(message))


class VerifyProvider(_Router):
    """Routes hosted-verify starts; checks go back to the provider that sent the code."""

    hosted_verify: ClassVar[bool] = True

    def wrap_reference(self, alias: str, reference: str) -> str:
        return f"{alias}:{reference}"

    def start(self, verification: HostedVerification) -> DeliveryResult:
        return self._run(
            verification.channel, verification.destination, lambda p: p.start(verification)
        )

    def _member_for(self, reference: str) -> tuple[BaseProvider, str]:
        from . import get_provider

        alias, sep, inner = reference.partition(":")
        if not sep or alias not in app_settings.PROVIDERS or alias == self.alias:
            raise ProviderResponseError("reference names no provider", provider=self.provider_name)
        return get_provider(alias), inner

    def code_characters(self, reference: str = "") -> str | None:
        if not reference:
            # Before a send: any member's characters may come back.
            from . import get_provider

            members = {a for table in self.routes.values() for v in table.values() for a in v}
            found = {get_provider(a).code_characters() for a in sorted(members)}
            return "".join(sorted(set("".join(c for c in found if c)))) or None
        try:
            member, inner = self._member_for(reference)
        except ProviderResponseError:
            return None
        return member.code_characters(inner)

    def check(self, reference: str, destination: str, code: str) -> bool:
        member, inner = self._member_for(reference)
        return member.check(inner, destination, code)
