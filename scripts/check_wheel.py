"""Check a built wheel ships everything the app needs at run time, and nothing else.

    python scripts/check_wheel.py dist/otp_auth_django-*.whl

Every template, static file, migration and translation file under ``otp_auth/`` must be
in the wheel, as must ``py.typed`` (PEP 561); tests, the demo project and caches must not
be.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "otp_auth"
FORBIDDEN_PREFIXES = ("tests/", "demo_project/", "benchmarks/", "scripts/")
FORBIDDEN_PARTS = ("__pycache__", ".pyc")


def required_files() -> set[str]:
    wanted = {"otp_auth/__init__.py", "otp_auth/py.typed", "otp_auth/migrations/__init__.py"}
    patterns = (
        "templates/**/*",
        "static/**/*",
        "migrations/0*.py",
        "locale/**/*.po",
        "locale/**/*.mo",
    )
    for pattern in patterns:
        for path in PACKAGE.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                wanted.add(path.relative_to(ROOT).as_posix())
    return wanted


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} WHEEL")
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        names = set(wheel.namelist())
    problems = [f"missing: {name}" for name in sorted(required_files() - names)]
    problems += [
        f"should not ship: {name}"
        for name in sorted(names)
        if name.startswith(FORBIDDEN_PREFIXES) or any(p in name for p in FORBIDDEN_PARTS)
    ]
    templates = sum(1 for n in names if n.startswith("otp_auth/templates/"))
    migrations = sum(1 for n in names if n.startswith("otp_auth/migrations/0"))
    if not templates or not migrations:
        problems.append("the wheel holds no templates or no migrations")
    if problems:
        sys.exit("wheel check failed:\n  " + "\n  ".join(problems))
    print(f"wheel ok: {len(names)} files, py.typed, {templates} templates, {migrations} migrations")


if __name__ == "__main__":
    main()
