from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("otp_auth", "0003_api_credentials")]

    operations: list[migrations.operations.base.Operation] = []
