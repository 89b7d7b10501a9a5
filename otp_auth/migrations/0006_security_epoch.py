"""The account-security epoch replaces the per-user session revocation time.

A user who had a revocation row starts at epoch 1, so that sessions verified before
this release (which carry no epoch, read as 0) must pass the second factor again.
"""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("otp_auth", "0005_password_reset"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameModel("SessionRevocation", "SecurityEpoch"),
        migrations.RemoveField("securityepoch", "revoked_at"),
        migrations.AddField(
            "securityepoch",
            "value",
            models.PositiveBigIntegerField(default=1, verbose_name="epoch"),
            preserve_default=False,
        ),
        migrations.AlterField(
            "securityepoch",
            "value",
            models.PositiveBigIntegerField(default=0, verbose_name="epoch"),
        ),
        migrations.AddField(
            "securityepoch",
            "changed_at",
            models.DateTimeField(default=django.utils.timezone.now, verbose_name="changed"),
        ),
        migrations.AddField(
            "securityepoch",
            "reason",
            models.CharField(blank=True, max_length=32, verbose_name="last change"),
        ),
        migrations.AlterField(
            "securityepoch",
            "user",
            models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                primary_key=True,
                related_name="otp_security_epoch",
                serialize=False,
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        migrations.AlterModelOptions(
            "securityepoch",
            options={"verbose_name": "security epoch", "verbose_name_plural": "security epochs"},
        ),
        migrations.AddField(
            "challenge",
            "flow_id",
            models.CharField(blank=True, editable=False, max_length=32, verbose_name="login flow"),
        ),
        migrations.AddIndex(
            "challenge",
            models.Index(
                condition=models.Q(("flow_id", ""), _negated=True),
                fields=["flow_id", "-created_at"],
                name="otp_auth_chal_flow_idx",
            ),
        ),
        migrations.AddField(
            "passwordreset",
            "epoch",
            models.PositiveBigIntegerField(
                default=0, editable=False, verbose_name="security epoch"
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("challenge_issued", "Challenge issued"),
                    ("code_sent", "Code sent"),
                    ("send_failed", "Send failed"),
                    ("delivered", "Delivered"),
                    ("delivery_failed", "Delivery failed"),
                    ("verified", "Code accepted"),
                    ("failed", "Code refused"),
                    ("expired", "Challenge expired"),
                    ("challenge_locked", "Challenge locked"),
                    ("cancelled", "Challenge cancelled"),
                    ("rate_limited", "Refused by a limit"),
                    ("account_locked", "Second factor locked"),
                    ("factor_disabled", "Second factor disabled"),
                    ("unlocked", "Second factor unlocked"),
                    ("factor_added", "Device added"),
                    ("factor_removed", "Device removed"),
                    ("reset_requested", "Password reset requested"),
                    ("reset_completed", "Password reset completed"),
                    ("signed_out_everywhere", "Signed out everywhere else"),
                ],
                max_length=32,
                verbose_name="event",
            ),
        ),
    ]
