from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import otp_auth.crypto


class Migration(migrations.Migration):
    dependencies = [
        ("otp_auth", "0004_more_factors"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PasswordReset",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("public_id", models.CharField(default=otp_auth.crypto.generate_public_id, editable=False, max_length=64, unique=True, verbose_name="public id")),
                ("subject", models.CharField(editable=False, max_length=80, verbose_name="limit subject")),
                ("channel", models.CharField(blank=True, choices=[("sms", "SMS"), ("voice", "Voice call"), ("email", "Email")], max_length=16, verbose_name="channel asked for")),
                ("second_factor", models.CharField(blank=True, max_length=32, verbose_name="second factor passed")),
                ("status", models.CharField(choices=[("pending", "Waiting for the code"), ("verified", "Code accepted"), ("completed", "Password changed"), ("cancelled", "Cancelled")], default="pending", max_length=16, verbose_name="status")),
                ("attempts", models.PositiveSmallIntegerField(default=0, verbose_name="wrong attempts")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name="created")),
                ("expires_at", models.DateTimeField(verbose_name="expires")),
                ("verified_at", models.DateTimeField(blank=True, null=True, verbose_name="code accepted")),
                ("grant_hash", models.CharField(blank=True, editable=False, max_length=64)),
                ("grant_expires_at", models.DateTimeField(blank=True, null=True, verbose_name="grant expires")),
                ("completed_at", models.DateTimeField(blank=True, null=True, verbose_name="password changed")),
                ("ip_address", models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address")),
                ("user_agent", models.CharField(blank=True, max_length=256, verbose_name="user agent")),
                ("challenge", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="otp_auth.challenge", verbose_name="reset code")),
                ("second_challenge", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="otp_auth.challenge", verbose_name="second-factor code")),
                ("user", models.ForeignKey(blank=True, help_text="Empty when no single active account matched the request.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="otp_password_resets", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "password reset",
                "verbose_name_plural": "password resets",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["subject", "status"], name="otp_auth_reset_subject_idx"),
                    models.Index(fields=["grant_hash"], name="otp_auth_reset_grant_idx"),
                    models.Index(fields=["created_at"], name="otp_auth_reset_created_idx"),
                ],
            },
        ),
    ]
