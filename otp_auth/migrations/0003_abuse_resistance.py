from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("otp_auth", "0002_delivery_attempts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name="time")),
                ("kind", models.CharField(choices=[("challenge_issued", "Challenge issued"), ("code_sent", "Code sent"), ("send_failed", "Send failed"), ("delivered", "Delivered"), ("delivery_failed", "Delivery failed"), ("verified", "Code accepted"), ("failed", "Code refused"), ("expired", "Challenge expired"), ("challenge_locked", "Challenge locked"), ("cancelled", "Challenge cancelled"), ("rate_limited", "Refused by a limit"), ("account_locked", "Second factor locked"), ("factor_disabled", "Second factor disabled"), ("unlocked", "Second factor unlocked"), ("factor_added", "Device added"), ("factor_removed", "Device removed"), ("reset_requested", "Password reset requested"), ("reset_completed", "Password reset completed")], max_length=32, verbose_name="event")),
                ("outcome", models.CharField(choices=[("success", "Success"), ("failure", "Failure"), ("blocked", "Blocked"), ("info", "Information")], max_length=16, verbose_name="outcome")),
                ("challenge_pk", models.PositiveBigIntegerField(blank=True, null=True, verbose_name="challenge")),
                ("purpose", models.CharField(blank=True, choices=[("login", "Login"), ("enrollment", "Device enrollment"), ("password_reset", "Password reset"), ("step_up", "Sensitive action")], max_length=32, verbose_name="purpose")),
                ("channel", models.CharField(blank=True, choices=[("sms", "SMS"), ("voice", "Voice call"), ("email", "Email")], max_length=16, verbose_name="channel")),
                ("destination", models.CharField(blank=True, max_length=128, verbose_name="destination")),
                ("ip_address", models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address")),
                ("user_agent", models.CharField(blank=True, max_length=256, verbose_name="user agent")),
                ("reason", models.CharField(blank=True, max_length=64, verbose_name="reason")),
                ("detail", models.CharField(blank=True, max_length=255, verbose_name="detail")),
                ("actor", models.ForeignKey(blank=True, help_text="Who did it, when not the user: the administrator who unlocked.", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL, verbose_name="actor")),
                ("user", models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="otp_audit_events", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "audit event",
                "verbose_name_plural": "audit events",
                "ordering": ["-created_at", "-pk"],
                "indexes": [
                    models.Index(fields=["created_at"], name="otp_auth_audit_created_idx"),
                    models.Index(fields=["user", "created_at"], name="otp_auth_audit_user_idx"),
                ],
            },
        ),
        migrations.CreateModel(
            name="Lockout",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("failures", models.PositiveIntegerField(default=0, verbose_name="refused codes in a row")),
                ("last_failure_at", models.DateTimeField(blank=True, null=True, verbose_name="last refused code")),
                ("locked_until", models.DateTimeField(blank=True, null=True, verbose_name="locked until")),
                ("disabled_at", models.DateTimeField(blank=True, null=True, verbose_name="disabled since")),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="otp_lockout", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "second-factor lockout",
                "verbose_name_plural": "second-factor lockouts",
                "ordering": ["-last_failure_at"],
                "permissions": [("unlock_lockout", "Can unlock a user's second factor")],
            },
        ),
    ]
