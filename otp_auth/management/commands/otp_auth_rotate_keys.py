"""Move what can be moved to the current keys, and count what still needs an old one.

Run it after putting a new key in place: a new ``SECRET_KEY`` with the old one in
``SECRET_KEY_FALLBACKS``, or a new first entry of ``OTP_AUTH["SEED_ENCRYPTION_KEYS"]``
(the keys derived from ``SECRET_KEY`` keep decrypting after the move to explicit keys).

- Authenticator seeds are re-encrypted under the current key, in batches, each batch one
  short transaction, so sign-ins go on.
- Recovery codes and sent codes are keyed hashes, which cannot be re-keyed without the
  code: the command counts those still under a fallback key. Remove a fallback only once
  this reports none, i.e. once those recovery-code sets are used up or regenerated and
  those codes have expired.

Only counts and row ids are printed, never a key, seed, code or hash. The exit status is
1 when a seed cannot be read by any configured key (or, in a dry run, would not be).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from otp_auth.services import keys


class Command(BaseCommand):
    help = (
        "Re-encrypt authenticator seeds under the current key and report recovery codes "
        "and sent codes that still need a fallback key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=keys.DEFAULT_BATCH_SIZE,
            help=f"Seeds per transaction ({keys.DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count; write nothing.")
        parser.add_argument("--database", default="default", help="Database alias (default).")

    def handle(
        self, *args: Any, batch_size: int, dry_run: bool, database: str, **options: Any
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            self.stderr.write("--batch-size must be between 1 and 10000.")
            raise SystemExit(2)
        seeds = keys.rotate_seeds(batch_size=batch_size, dry_run=dry_run, using=database)
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(
            f"Seeds: {seeds.rotated} {verb}, {seeds.current} already under the current key, "
            f"{len(seeds.unreadable)} unreadable."
        )
        for pk in seeds.unreadable:
            self.stderr.write(f"Authenticator pk={pk}: no configured key opens its seed.")

        recovery = keys.recovery_code_counts(using=database)
        self.stdout.write(
            f"Recovery-code sets: {recovery.older} still under a fallback key, "
            f"{recovery.unknown} of unrecorded key, {recovery.stranded} under a key no "
            "longer configured."
        )
        pending = keys.pending_code_counts(using=database)
        self.stdout.write(
            f"Pending codes: {pending.older} under a fallback key, {pending.unknown} of "
            f"unrecorded key, {pending.stranded} under a key no longer configured."
        )
        if recovery.at_risk or pending.at_risk:
            self.stdout.write(
                "Keep SECRET_KEY_FALLBACKS until these are gone: recovery-code sets leave an "
                "old key when used up or regenerated, pending codes when they expire."
            )
        else:
            self.stdout.write("No recovery code or pending code needs a fallback key.")
        if seeds.unreadable:
            raise SystemExit(1)
