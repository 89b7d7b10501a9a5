"""List provider aliases with their shared circuit-breaker state; close a circuit by hand.

The state is the one every process reads (``OTP_AUTH["CACHE"]``), so this shows what the
whole fleet does, and ``--reset`` takes effect everywhere at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from otp_auth.conf import app_settings
from otp_auth.providers import health


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Command(BaseCommand):
    help = (
        "Show each OTP provider alias with its circuit state (closed, open, half_open), "
        "failures counted in the current window and when the circuit opened."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            metavar="ALIAS",
            action="append",
            default=[],
            help="Close the circuit of ALIAS (repeatable) for every process.",
        )

    def handle(self, *args: Any, reset: list[str], **options: Any) -> None:
        providers = app_settings.PROVIDERS
        unknown = [alias for alias in reset if alias not in providers]
        if unknown:
            raise CommandError(f"Unknown provider alias(es): {', '.join(unknown)}.")
        for alias in reset:
            was_open = health.reset(alias)
            self.stdout.write(f"{alias}: circuit closed" + ("" if was_open else " (was closed)"))
        if reset:
            return
        rows = [("ALIAS", "STATE", "FAILURES", "OPENED AT", "PROBE FROM", "BREAKER")]
        for alias in providers:
            current = health.state(alias)
            config = current.settings
            breaker = (
                f"{config.failures} in {config.window} s, cool-off {config.cool_off} s"
                if config.enabled
                else "off"
            )
            rows.append(
                (
                    alias,
                    current.state,
                    str(current.failures),
                    _when(current.opened_at),
                    _when(current.reopens_at),
                    breaker,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
