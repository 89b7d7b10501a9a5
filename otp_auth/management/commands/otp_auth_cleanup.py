"""Delete old challenges and audit events, in small batches. Safe to run from cron while
the site is live: each batch is its own short transaction, so no lock is held for long
and logins go on between batches."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import models, transaction
from django.utils import timezone

from otp_auth.conf import app_settings
from otp_auth.models import AuditEvent, Challenge, PasswordReset


class Command(BaseCommand):
    help = (
        "Delete OTP challenges (with their delivery attempts), password resets and audit "
        "events older than their retention periods, in batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep challenges this many days (CHALLENGE_RETENTION_DAYS, 30).",
        )
        parser.add_argument(
            "--audit-days",
            type=int,
            default=None,
            help="Keep audit events this many days (AUDIT_RETENTION_DAYS, 365).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Rows per transaction (2000)."
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to sleep between batches, to spread the load (0).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count.")

    def handle(
        self,
        *args: Any,
        days: int | None,
        audit_days: int | None,
        batch_size: int,
        pause: float,
        dry_run: bool,
        **options: Any,
    ) -> None:
        days = app_settings.CHALLENGE_RETENTION_DAYS if days is None else days
        audit_days = app_settings.AUDIT_RETENTION_DAYS if audit_days is None else audit_days
        for name, value in (("--days", days), ("--audit-days", audit_days)):
            if value < 1:
                self.stderr.write(f"{name} must be at least 1.")
                raise SystemExit(2)
        if not 1 <= batch_size <= 50_000:
            self.stderr.write("--batch-size must be between 1 and 50000.")
            raise SystemExit(2)
        now = timezone.now()
        work = [
            ("challenge(s)", Challenge, now - timedelta(days=days), days),
            ("audit event(s)", AuditEvent, now - timedelta(days=audit_days), audit_days),
            # Kept as long as challenges: requests for unknown accounts write rows too.
            ("password reset(s)", PasswordReset, now - timedelta(days=days), days),
        ]
        for label, model, cutoff, kept in work:
            old = model._default_manager.filter(created_at__lt=cutoff)
            if dry_run:
                self.stdout.write(f"{old.count()} {label} older than {kept} days.")
                continue
            deleted, batches = self._delete(old, batch_size, pause)
            self.stdout.write(f"Deleted {deleted} {label} older than {kept} days.")
            if options["verbosity"] > 1:
                self.stdout.write(f"  in {batches} batch(es) of at most {batch_size} rows.")

    def _delete(self, old: models.QuerySet[Any], batch_size: int, pause: float) -> tuple[int, int]:
        """Delete ``old`` by primary keys, ``batch_size`` at a time, each batch in its own
        transaction; returns (rows of ``old`` deleted, batches)."""
        model = old.model
        deleted = batches = 0
        while True:
            # The created_at index finds the batch; deleting by primary key touches only
            # those rows (and, for challenges, their delivery attempts).
            pks = list(old.order_by().values_list("pk", flat=True)[:batch_size])
            if not pks:
                return deleted, batches
            with transaction.atomic():
                _, per_model = model._default_manager.filter(pk__in=pks).delete()
            deleted += per_model.get(model._meta.label, 0)
            batches += 1
            if pause:
                time.sleep(pause)
