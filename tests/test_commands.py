"""``otp_auth_cleanup``: deletes challenges past the retention period, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from otp_auth.constants import Purpose
from otp_auth.models import Challenge, Device

pytestmark = pytest.mark.django_db


def make_challenge(user: Any, age: timedelta) -> Challenge:
    created = timezone.now() - age
    return Challenge.objects.create(
        user=user,
        device=user.otp_devices.first(),
        purpose=Purpose.LOGIN,
        channel="sms",
        provider_alias="default",
        destination_masked="\u2022\u2022\u2022\u20224567",
        max_attempts=5,
        created_at=created,
        expires_at=created + timedelta(minutes=10),
    )


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("otp_auth_cleanup", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_deletes_only_rows_older_than_days(user: Any) -> None:
    old = make_challenge(user, timedelta(days=8))
    older = make_challenge(user, timedelta(days=400))
    recent = make_challenge(user, timedelta(days=6, hours=23))
    out, _ = run("--days", "7")
    assert "Deleted 2 challenge(s) older than 7 days." in out
    remaining = set(Challenge.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk}
    assert old.pk not in remaining
    assert older.pk not in remaining
    # Devices are not audit rows: they stay.
    assert Device.objects.filter(user=user).count() == 1


def test_default_retention_is_30_days(user: Any) -> None:
    make_challenge(user, timedelta(days=31))
    kept = make_challenge(user, timedelta(days=29))
    out, _ = run()
    assert "Deleted 1 challenge(s) older than 30 days." in out
    assert list(Challenge.objects.values_list("pk", flat=True)) == [kept.pk]


def test_dry_run_counts_without_deleting(user: Any) -> None:
    make_challenge(user, timedelta(days=40))
    make_challenge(user, timedelta(days=35))
    make_challenge(user, timedelta(days=1))
    out, _ = run("--days", "30", "--dry-run")
    assert out.splitlines()[0] == "2 challenge(s) older than 30 days."
    assert Challenge.objects.count() == 3


def test_nothing_to_delete(user: Any) -> None:
    make_challenge(user, timedelta(hours=1))
    out, _ = run("--days", "1")
    assert "Deleted 0 challenge(s)" in out
    assert Challenge.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-3"])
def test_days_below_one_is_an_error(user: Any, days: str) -> None:
    make_challenge(user, timedelta(days=90))
    stderr = StringIO()
    with pytest.raises(SystemExit) as info:
        call_command("otp_auth_cleanup", "--days", days, stdout=StringIO(), stderr=stderr)
    assert info.value.code == 2
    assert "--days must be at least 1" in stderr.getvalue()
    assert Challenge.objects.count() == 1
