"""The core app imports, checks and routes without the ``drf`` extra."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rest_framework")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
for name in ("rest_framework", "drf_spectacular"):
    sys.modules[name] = None  # import fails, as when the extra is not installed
import django
django.setup()
import importlib, pathlib
for path in sorted(pathlib.Path("otp_auth").rglob("*.py")):
    name = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
    if not name.startswith(("otp_auth.api", "otp_auth.migrations")):
        importlib.import_module(name)
from django.conf import settings
from django.core.management import call_command
from django.urls import get_resolver
assert "rest_framework" not in settings.INSTALLED_APPS
assert "otp_auth_api" not in get_resolver().namespace_dict
call_command("check", fail_level="WARNING")
print("core ok")
"""


def test_the_core_works_without_drf():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("core ok")


def test_only_otp_auth_api_imports_drf():
    offenders = []
    for path in (ROOT / "otp_auth").rglob("*.py"):
        if "api" in path.relative_to(ROOT / "otp_auth").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("rest_framework", "drf_spectacular") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
