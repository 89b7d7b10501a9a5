from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("otp_auth", "0004_abuse_resistance")]

    operations: list[migrations.operations.base.Operation] = []
