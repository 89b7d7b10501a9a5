from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("otp_auth", "0006_security_epoch"),
    ]

    operations = [
        migrations.AddField(
            model_name="challenge",
            name="checks_in_flight",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="challenge",
            name="checks_due_by",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="lockout",
            name="checks_in_flight",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="lockout",
            name="checks_due_by",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
