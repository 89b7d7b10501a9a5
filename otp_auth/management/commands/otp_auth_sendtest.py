"""Send a test message through a configured provider alias, to check a deployment.

    manage.py otp_auth_sendtest +233241234567
    manage.py otp_auth_sendtest +233241234567 --alias twilio --channel voice
    manage.py otp_auth_sendtest alice@example.com --channel email

Deliver-only providers get a message without any code. Hosted-verify providers can only
send codes, so the vendor sends a real one; ``--check`` then reads the code you received
from standard input and asks the vendor whether it is right. The output names the
provider, its reference and each attempt, never a credential. Exit status 1 on failure.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from otp_auth.conf import app_settings
from otp_auth.constants import PHONE_CHANNELS, Channel
from otp_auth.exceptions import DeliveryError, InvalidDestinationError
from otp_auth.providers import HostedVerification, OTPMessage, get_provider
from otp_auth.providers.routing import Attempt, RoutedResult
from otp_auth.services import delivery
from otp_auth.services.devices import normalize_email, parse_phone_number


class Command(BaseCommand):
    help = "Send a test message (no code) through a provider alias and print the outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", help="Phone number (E.164) or email address.")
        parser.add_argument(
            "--alias", help="Provider alias (default: the one that serves the channel)."
        )
        parser.add_argument(
            "--channel",
            choices=Channel.values,
            default=None,
            help="sms (default for numbers), voice or email.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Hosted verify only: read the received code from stdin and check it.",
        )

    def handle(
        self,
        *args: Any,
        destination: str,
        alias: str | None,
        channel: str | None,
        check: bool,
        **options: Any,
    ) -> None:
        channel = channel or (Channel.EMAIL if "@" in destination else Channel.SMS)
        try:
            if channel in PHONE_CHANNELS:
                destination = parse_phone_number(destination)
            else:
                destination = normalize_email(destination)
            delivery.check_destination_allowed(channel, destination)
        except (InvalidDestinationError, DeliveryError) as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        alias = alias or app_settings.provider_alias_for(channel)
        try:
            provider = get_provider(alias)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if channel not in provider.channels:
            raise CommandError(f"Provider {alias!r} does not serve the {channel} channel.")

        self.stdout.write(f"Sending a {channel} test through {alias!r} ({provider.provider_name})")
        try:
            if provider.hosted_verify:
                result = provider.start(
                    HostedVerification(
                        destination=destination,
                        channel=channel,
                        purpose="test",
                        code_length=app_settings.CODE_LENGTH,
                        ttl=app_settings.CODE_TTL,
                    )
                )
            else:
                result = provider.send(self._message(destination, channel))
        except DeliveryError as exc:
            self._print_attempts(exc.attempts)
            raise CommandError(f"FAILED {exc.code}: {exc}") from exc
        if isinstance(result, RoutedResult):
            self._print_attempts(result.attempts)
        self.stdout.write(
            self.style.SUCCESS(
                f"OK {result.status or 'sent'} via {result.provider}"
                + (f", reference {result.reference}" if result.reference else "")
            )
        )
        if provider.hosted_verify and check:
            self._check(provider, result.reference, destination)

    def _message(self, destination: str, channel: str) -> OTPMessage:
        site = app_settings.SITE_NAME or "otp_auth"
        text = f"Test message from {site}: delivery works. No action is needed."
        return OTPMessage(
            destination=destination,
            text=text,
            channel=channel,
            purpose="test",
            subject=f"{site}: test message",
        )

    def _check(self, provider: Any, reference: str, destination: str) -> None:
        self.stdout.write("Code received: ", ending="")
        self.stdout.flush()
        code = sys.stdin.readline().strip()
        try:
            approved = provider.check(reference, destination, code)
        except DeliveryError as exc:
            raise CommandError(f"CHECK FAILED {exc.code}: {exc}") from exc
        if not approved:
            raise CommandError("REFUSED: the provider did not accept the code.")
        self.stdout.write(self.style.SUCCESS("APPROVED: the provider accepted the code."))

    def _print_attempts(self, attempts: tuple[Attempt, ...]) -> None:
        for number, attempt in enumerate(attempts, 1):
            parts = [f"  attempt {number}: {attempt.alias} ({attempt.provider}) {attempt.outcome}"]
            if attempt.error:
                parts.append(attempt.error)
            if attempt.http_status:
                parts.append(f"HTTP {attempt.http_status}")
            if attempt.vendor_code:
                parts.append(f"vendor code {attempt.vendor_code}")
            if attempt.detail:
                parts.append(f"- {attempt.detail}")
            self.stdout.write(" ".join(parts))
