"""The settings reference of the docs is generated from ``otp_auth/conf.py``: every
setting is in it, with its meaning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from otp_auth.conf import DEFAULTS, RATE_LIMIT_DEFAULTS

HOOK = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "settings_reference.py"


def _hook():
    spec = importlib.util.spec_from_file_location("settings_reference", HOOK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_is_in_the_generated_reference_with_a_meaning() -> None:
    rows = _hook().settings_table().splitlines()[2:]
    keys = [row.split("|")[1].strip().strip("`") for row in rows]
    assert keys == sorted(DEFAULTS)
    empty = [key for key, row in zip(keys, rows, strict=True) if row.rstrip().endswith("|  |")]
    assert empty == [], "settings without a docstring in AppSettings"


def test_every_rate_limit_is_in_the_reference() -> None:
    table = _hook().rate_limits_table()
    for name in RATE_LIMIT_DEFAULTS:
        assert f"| `{name}` |" in table
