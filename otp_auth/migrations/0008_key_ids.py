from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    """Key ids beside what each key protects, so key rotations can be counted."""

    dependencies = [
        ("otp_auth", "0007_hosted_check_reservations"),
    ]

    operations = [
        migrations.AddField(
            model_name="challenge",
            name="key_id",
            field=models.CharField(blank=True, editable=False, max_length=16),
        ),
        migrations.AddField(
            model_name="recoverycodeset",
            name="key_id",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=16),
        ),
        migrations.AddField(
            model_name="totpdevice",
            name="key_id",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=16),
        ),
    ]
