"""The demo site in a real browser: password, code from the console provider, protected page.

Runs ``manage.py runserver`` with the demo's own settings (not the test settings) on a
fresh SQLite file, and drives it with Playwright and the system Chromium. Skips when
``/usr/bin/chromium`` or ``playwright`` is missing; ``OTP_AUTH_REQUIRE_BROWSER=1`` turns
that skip into a failure (CI sets it).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
USERNAME = "demo"
PASSWORD = "demo-password-2fa"
TIMEOUT = 10.0
# One console message: header line, optional subject, text, closing rule.
CONSOLE_MESSAGE = re.compile(r"\[otp_auth console\][^\n]*\n(.*?)\n-{60}", re.S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """The demo under ``runserver``, with everything it prints kept for reading codes."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo_project.settings",
            "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}",
            "CACHE_URL": "locmemcache://",
            "DEBUG": "True",
            "OTP_PROVIDER": "otp_auth.providers.console.ConsoleProvider",
            "OTP_REQUIRE_ENROLLMENT": "False",
            "PYTHONUNBUFFERED": "1",
        }
        self.output = ""
        self._lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("demo_seed")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runserver exited early:\n{self.output}")
            try:
                urllib.request.urlopen(f"{self.url}/", timeout=1).close()  # noqa: S310
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"runserver did not answer within {TIMEOUT} s:\n{self.output}")

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.output += line

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def messages(self) -> list[str]:
        with self._lock:
            return CONSOLE_MESSAGE.findall(self.output)

    def wait_for_code(self, seen: int) -> str:
        """The code in console message number ``seen + 1``, waiting for it to be printed."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) > seen:
                match = re.search(r"\b(\d{6})\b", found[seen])
                assert match, "the console message holds no 6-digit code"
                return match.group(1)
            time.sleep(0.05)
        raise AssertionError("the demo printed no code")

    def wait_for_any_code(self, offset: int) -> str:
        """The first code printed after ``offset`` characters of output, by the console
        provider or by Django's console email backend ("... code is 123456")."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self._lock:
                match = re.search(r"code is (\d{6})\b", self.output[offset:])
            if match:
                return match.group(1)
            time.sleep(0.05)
        raise AssertionError("the demo printed no code")


def _unavailable(reason: str) -> None:
    if os.environ.get("OTP_AUTH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and OTP_AUTH_REQUIRE_BROWSER=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = DemoServer(tmp_path_factory.mktemp("demo"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT * 1000)
    yield context.new_page()
    context.close()


def _password_step(page: Any, demo: DemoServer) -> str:
    """Open the protected page, sign in with the password; return the code sent."""
    seen = len(demo.messages())
    page.goto(f"{demo.url}/protected/")
    assert page.url.startswith(f"{demo.url}/account/login/"), page.url
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.url}/account/login/verify/")
    assert "••••4567" in page.inner_text("body")
    return demo.wait_for_code(seen)


def _submit_code(page: Any, code: str) -> None:
    page.fill("input[name=code]", code)
    with page.expect_navigation():
        page.click("form[action$='/login/verify/'] button[type=submit]")


def test_right_code_reaches_the_protected_page(page: Any, demo: DemoServer) -> None:
    code = _password_step(page, demo)
    _submit_code(page, code)
    assert page.url == f"{demo.url}/protected/"
    assert page.inner_text("h1") == "Protected page"


def test_five_wrong_codes_lock_the_code(page: Any, demo: DemoServer) -> None:
    code = _password_step(page, demo)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        _submit_code(page, wrong)
        assert page.url == f"{demo.url}/account/login/verify/"
        assert page.locator("input[name=code]").count() == 1
        assert "locked" not in page.inner_text("body")
    _submit_code(page, wrong)
    body = page.inner_text("body")
    assert "This code is now locked" in body
    # The code form is gone: even the right code can no longer be tried here.
    assert page.locator("input[name=code]").count() == 0
    page.goto(f"{demo.url}/protected/")
    assert "Protected page" not in page.inner_text("body")


def test_password_reset_by_code_then_login_with_the_new_password(
    page: Any, demo: DemoServer
) -> None:
    # Last in this module: it changes the demo user's password. A successful login first
    # ends any streak of refused codes left by the test above (whose lockout delay would
    # otherwise refuse the next code for a second).
    _submit_code(page, _password_step(page, demo))
    page.context.clear_cookies()
    new_password = "a-brand-new-passphrase-42"
    page.goto(f"{demo.url}/account/login/")
    seen = len(demo.messages())
    page.click("text=Forgot password?")
    page.fill("input[name=identifier]", USERNAME)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    reset_code = demo.wait_for_code(seen)
    page.fill("input[name=code]", reset_code)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "Choose a new password" in page.inner_text("h1")

    # The account has a second factor: a code to the other device is needed as well.
    offset = len(demo.output)
    with page.expect_navigation():
        page.get_by_role("button", name="Send a code to Email").click()
    second_code = demo.wait_for_any_code(offset)  # by email: Django's console backend
    assert second_code != reset_code
    page.get_by_role("radio", name=re.compile("Email")).check()
    page.fill("input[name=code]", second_code)
    page.fill("input[name=new_password1]", new_password)
    page.fill("input[name=new_password2]", new_password)
    with page.expect_navigation():
        page.click("form[action$='/password-reset/new/'] button[type=submit]:not([form])")
    assert page.url.startswith(f"{demo.url}/account/login/"), (page.url, page.inner_text("main"))

    # Not logged in; the next login needs the new password and a second factor.
    page.goto(f"{demo.url}/protected/")
    assert page.url.startswith(f"{demo.url}/account/login/")
    offset = len(demo.output)
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", new_password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.url}/account/login/verify/")
    # The email device was used last (for the reset), so the login code goes there.
    _submit_code(page, demo.wait_for_any_code(offset))
    assert page.url == f"{demo.url}/protected/"
