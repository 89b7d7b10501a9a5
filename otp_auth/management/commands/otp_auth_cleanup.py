"""Delete challenges older than ``--days`` (default 30). Safe to run from cron."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from otp_auth.models import Challenge


class Command(BaseCommand):
    help = "Delete OTP challenges older than a number of days (the audit retention period)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="Keep this many days (30).")
        parser.add_argument("--dry-run", action="store_true", help="Only count.")

    def handle(self, *args: Any, days: int, dry_run: bool, **options: Any) -> None:
        if days < 1:
            self.stderr.write("--days must be at least 1.")
            raise SystemExit(2)
        cutoff = timezone.now() - timedelta(days=days)
        old = Challenge.objects.filter(created_at__lt=cutoff)
        if dry_run:
            self.stdout.write(f"{old.count()} challenge(s) older than {days} days.")
            return
        deleted, _ = old.delete()
        self.stdout.write(f"Deleted {deleted} challenge(s) older than {days} days.")
