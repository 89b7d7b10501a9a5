from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("otp_auth", "0003_abuse_resistance"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TOTPDevice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(blank=True, max_length=64, verbose_name="name")),
                ("encrypted_seed", models.TextField(editable=False)),
                ("algorithm", models.CharField(choices=[("sha1", "SHA-1"), ("sha256", "SHA-256"), ("sha512", "SHA-512")], default="sha1", max_length=8, verbose_name="algorithm")),
                ("digits", models.PositiveSmallIntegerField(default=6, verbose_name="digits")),
                ("period", models.PositiveSmallIntegerField(default=30, verbose_name="seconds per code")),
                ("confirmed", models.BooleanField(default=False, verbose_name="confirmed")),
                ("last_step", models.BigIntegerField(blank=True, null=True, verbose_name="last accepted time step")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name="created")),
                ("last_used_at", models.DateTimeField(blank=True, null=True, verbose_name="last used")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="otp_totp_devices", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "authenticator app",
                "verbose_name_plural": "authenticator apps",
                "ordering": ["-last_used_at", "-created_at"],
                "indexes": [models.Index(fields=["user", "confirmed"], name="otp_auth_totp_user_idx")],
            },
        ),
        migrations.CreateModel(
            name="RecoveryCodeSet",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="generated")),
                ("last_used_at", models.DateTimeField(blank=True, null=True, verbose_name="last used")),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="otp_recovery_codes", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "recovery code set",
                "verbose_name_plural": "recovery code sets",
            },
        ),
        migrations.CreateModel(
            name="RecoveryCode",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("salt", models.CharField(editable=False, max_length=32)),
                ("code_hash", models.CharField(editable=False, max_length=64)),
                ("used_at", models.DateTimeField(blank=True, null=True, verbose_name="used")),
                ("code_set", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="codes", to="otp_auth.recoverycodeset", verbose_name="set")),
            ],
            options={
                "verbose_name": "recovery code",
                "verbose_name_plural": "recovery codes",
                "ordering": ["pk"],
            },
        ),
        migrations.CreateModel(
            name="TrustedBrowser",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("fingerprint", models.CharField(editable=False, max_length=64)),
                ("user_agent", models.CharField(blank=True, max_length=256, verbose_name="browser")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="remembered since")),
                ("expires_at", models.DateTimeField(verbose_name="expires")),
                ("last_used_at", models.DateTimeField(blank=True, null=True, verbose_name="last used")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="otp_trusted_browsers", to=settings.AUTH_USER_MODEL, verbose_name="user")),
            ],
            options={
                "verbose_name": "trusted browser",
                "verbose_name_plural": "trusted browsers",
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["expires_at"], name="otp_auth_trusted_exp_idx")],
            },
        ),
        migrations.CreateModel(
            name="SessionRevocation",
            fields=[
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="otp_session_revocation", serialize=False, to=settings.AUTH_USER_MODEL, verbose_name="user")),
                ("revoked_at", models.DateTimeField(verbose_name="sessions revoked at")),
            ],
            options={
                "verbose_name": "session revocation",
                "verbose_name_plural": "session revocations",
            },
        ),
    ]
