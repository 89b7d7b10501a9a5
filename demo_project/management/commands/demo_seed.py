"""Create the demo user (``demo`` / ``demo-password-2fa``) with confirmed devices."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from otp_auth.models import Device

USERNAME = "demo"
PASSWORD = "demo-password-2fa"


class Command(BaseCommand):
    help = "Create or reset the demo user and its confirmed phone and email devices."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=USERNAME, defaults={"email": "demo@example.com"}
        )
        user.set_password(PASSWORD)
        user.is_staff = user.is_superuser = True
        user.save()
        Device.objects.filter(user=user).delete()
        Device.objects.create(
            user=user,
            name="Phone",
            phone_number="+233241234567",
            channels=["sms", "voice"],
            confirmed=True,
            # Most recently used device first: the login code goes to the phone.
            last_used_at=timezone.now(),
        )
        Device.objects.create(
            user=user,
            name="Email",
            email="demo@example.com",
            channels=["email"],
            confirmed=True,
        )
        # A new run of the demo starts with no send caps or lockout left from the last.
        call_command("otp_auth_reset_limits", user=[USERNAME], ip=["127.0.0.1"], stdout=self.stdout)
        self.stdout.write(f"Demo user ready: {USERNAME} / {PASSWORD} (superuser, 2 devices).")
