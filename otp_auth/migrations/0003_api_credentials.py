from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("otp_auth", "0002_delivery_attempts")]

    operations: list[migrations.operations.base.Operation] = []
