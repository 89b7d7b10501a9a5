"""Prove the README quickstart works from the installed wheel alone.

Run with the Python of a virtualenv where only the built wheel is installed::

    python scripts/check_quickstart.py /tmp/somewhere

It creates a project with ``startproject``, applies the quickstart (settings and URLs),
runs ``check`` and ``migrate``, then signs up a device and signs in through both steps
with Django's test client, reading codes from what the console provider prints. The
page users land on after signing in must exist (not a 404), and an email device must
confirm through Django's email framework.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = "mysite"
PASSWORD = "quickstart-password-2fa"
# International format: the quickstart sets no DEFAULT_REGION.
PHONE = "+233 24 123 4567"
EMAIL = "alice@example.com"

# The README quickstart's settings, as a block appended to a new project's settings.py.
SETTINGS_SNIPPET = """
# --- otp_auth quickstart ---
INSTALLED_APPS += ["otp_auth"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "otp_auth.middleware.OTPMiddleware",
)
LOGIN_URL = "otp_auth:login"
LOGIN_REDIRECT_URL = "otp_auth:security"
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
OTP_AUTH = {
    "PROVIDERS": {
        # Development: codes are printed to the console. Use a real provider in production.
        "default": {"BACKEND": "otp_auth.providers.console.ConsoleProvider"},
        "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
    },
    "CHANNEL_PROVIDERS": {"email": "email"},
}
"""
# ... and to urls.py.
URL_IMPORT = "from django.urls import include, path"
URL_PATTERN = '    path("account/", include("otp_auth.urls")),\n'


def step(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def manage(project_dir: Path, *args: str) -> None:
    # Fixed argv with this interpreter: nothing comes from outside.
    subprocess.run([sys.executable, "manage.py", *args], cwd=project_dir, check=True)  # noqa: S603


def create_project(workdir: Path) -> Path:
    project_dir = workdir / PROJECT
    project_dir.mkdir(parents=True)
    step(f"django-admin startproject {PROJECT}")
    command = [sys.executable, "-m", "django", "startproject", PROJECT, str(project_dir)]
    subprocess.run(command, check=True)  # noqa: S603
    settings_py = project_dir / PROJECT / "settings.py"
    settings_py.write_text(settings_py.read_text() + SETTINGS_SNIPPET)
    urls_py = project_dir / PROJECT / "urls.py"
    urls = urls_py.read_text()
    assert "from django.urls import path\n" in urls and "urlpatterns = [\n" in urls
    urls = urls.replace("from django.urls import path\n", URL_IMPORT + "\n")
    urls = urls.replace("urlpatterns = [\n", "urlpatterns = [\n" + URL_PATTERN)
    urls_py.write_text(urls)
    return project_dir


class Console:
    """Collects what the console provider prints, to read codes back like a user would."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @contextlib.contextmanager
    def capture(self) -> Any:
        with contextlib.redirect_stdout(self.buffer):
            yield

    def last_code(self) -> str:
        codes = re.findall(r"\b(\d{6})\b", self.buffer.getvalue())
        assert codes, "the console provider printed no code"
        return str(codes[-1])


def expect_redirect(response: Any, prefix: str) -> None:
    location = response.get("Location", "")
    assert response.status_code == 302 and location.startswith(prefix), (
        f"expected a redirect to {prefix}, got {response.status_code} {location!r}"
    )


def sign_in(project_dir: Path) -> None:
    sys.path.insert(0, str(project_dir))
    os.environ["DJANGO_SETTINGS_MODULE"] = f"{PROJECT}.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    import otp_auth

    origin = Path(otp_auth.__file__).resolve()
    assert "site-packages" in origin.parts, f"otp_auth imported from {origin}, not the wheel"
    step(f"otp_auth {getattr(otp_auth, '__version__', '?')} from {origin.parent}")

    setup_test_environment()
    get_user_model().objects.create_user("alice", password=PASSWORD)
    console = Console()
    client = Client()

    step("first sign-in: password only (no device yet), then enroll a phone and an email")
    with console.capture():
        expect_redirect(client.get("/account/devices/"), "/account/login/")
        response = client.post("/account/login/", {"username": "alice", "password": PASSWORD})
        expect_landing(client, response)
        response = client.post(
            "/account/devices/add/", {"channel": "sms", "phone": PHONE, "name": "Phone"}
        )
        expect_redirect(response, "/account/devices/confirm/")
        response = client.post("/account/devices/confirm/", {"code": console.last_code()})
        expect_redirect(response, "/account/devices/")
        client.post("/account/logout/")

    step("second sign-in: password, then the code sent to the phone")
    client = Client()
    with console.capture():
        response = client.post("/account/login/", {"username": "alice", "password": PASSWORD})
        expect_redirect(response, "/account/login/verify/")
        # A password alone does not sign the user in: the session is still anonymous.
        expect_redirect(client.get("/account/devices/"), "/account/login/")
        page = client.get("/account/login/verify/").content.decode()
        assert "••••4567" in page, "the code page does not show the masked phone number"
        response = client.post("/account/login/verify/", {"code": console.last_code()})
        expect_landing(client, response)

    # The test environment swaps EMAIL_BACKEND for Django's in-memory outbox.
    step("add an email address: the code goes out through Django's email framework")
    with console.capture():
        response = client.get("/account/devices/add/")
        if response.status_code == 302:  # a fresh step-up first, with the phone
            step_up = response["Location"]
            client.post(step_up, {"send": "1"})
            response = client.post(step_up, {"code": console.last_code()})
        response = client.post(
            "/account/devices/add/", {"channel": "email", "email": EMAIL, "name": "Mail"}
        )
        expect_redirect(response, "/account/devices/confirm/")
        from django.core import mail

        codes = re.findall(r"\b(\d{6})\b", mail.outbox[-1].body)
        assert codes, "the email carries no code"
        response = client.post("/account/devices/confirm/", {"code": codes[-1]})
        expect_redirect(response, "/account/devices/")
    page = client.get("/account/devices/").content.decode()
    assert "Mail" in page, "the email device is not listed"
    step("signed in through both steps; phone and email confirmed")


def expect_landing(client: Any, response: Any) -> None:
    """The page a user lands on after signing in exists (LOGIN_REDIRECT_URL is set)."""
    assert response.status_code == 302, f"expected a redirect, got {response.status_code}"
    location = response["Location"]
    landing = client.get(location)
    assert landing.status_code == 200, (
        f"after sign-in the user lands on {location}: {landing.status_code}"
    )


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} WORKDIR")
    project_dir = create_project(Path(sys.argv[1]).resolve())
    step("manage.py check")
    manage(project_dir, "check", "--fail-level", "WARNING")
    step("manage.py migrate")
    manage(project_dir, "migrate", "--noinput", "-v", "0")
    sign_in(project_dir)
    step("OK")


if __name__ == "__main__":
    main()
