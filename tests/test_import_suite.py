"""Runs tests/importing (``otp_auth_import`` against the real django-otp,
django-two-factor-auth and django-allauth models) in a pytest process of its own, under
tests.settings_import: those apps stay out of the main suite's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_suite_passes() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "CACHE_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q"]
        + ["--ds", "tests.settings_import", "tests/importing"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout
