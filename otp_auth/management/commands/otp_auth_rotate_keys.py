"""Re-encrypt every authenticator seed under the first key of ``SEED_ENCRYPTION_KEYS``
(or under the key derived from the current ``SECRET_KEY``).

Run it after putting a new key first (or a new ``SECRET_KEY`` in place with the old one
in ``SECRET_KEY_FALLBACKS``); the old key can be removed once it reports no failures.
Each row is locked and rewritten in its own short transaction, so logins go on.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from otp_auth.encryption import SeedDecryptionError, rotate_seed
from otp_auth.models import TOTPDevice


class Command(BaseCommand):
    help = "Re-encrypt authenticator seeds under the current first encryption key."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = failed = 0
        for pk in TOTPDevice.objects.order_by("pk").values_list("pk", flat=True).iterator():
            with transaction.atomic():
                device = TOTPDevice.objects.select_for_update().filter(pk=pk).first()
                if device is None:
                    continue
                try:
                    device.encrypted_seed = rotate_seed(device.encrypted_seed)
                except SeedDecryptionError:
                    failed += 1
                    self.stderr.write(f"Authenticator pk={pk}: no configured key opens its seed.")
                    continue
                device.save(update_fields=["encrypted_seed"])
                rotated += 1
        self.stdout.write(f"{rotated} seeds re-encrypted, {failed} unreadable.")
        if failed:
            raise SystemExit(1)
