"""Notifications name the browser from a fixed list of products, never by quoting the
``User-Agent`` header, which whoever set off the message wrote."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client, RequestFactory

from otp_auth.models import TrustedBrowser
from otp_auth.services import notify
from otp_auth.useragent import describe
from tests.conftest import PASSWORD, last_code, otp_settings, wrong_code

HOSTILE = (
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/121.0 <a href="https://evil.example/'
    'reset">Your account is safe, click here</a> Call +1 555 0100 http://evil.example/x'
)

REAL = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Firefox on Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Chrome on Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        "Edge on Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.2 Safari/605.1.15",
        "Safari on macOS",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "Safari on iOS",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
        "Chrome on iOS",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
        "Firefox on iPadOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        "Chrome on Android",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like "
        "Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        "Samsung Internet on Android",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
        "Opera on Linux",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Chrome on ChromeOS",
    ),
    (
        "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
        "Internet Explorer on Windows",
    ),
    ("curl/8.5.0", "curl"),
    ("python-requests/2.31.0", "Python"),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64)", "an unknown browser on Linux"),
    ("", "an unknown browser"),
    ("NotFirefox/1.0 Firefoxy", "an unknown browser"),
    ("<script>alert(1)</script>", "an unknown browser"),
    ("https://evil.example/", "an unknown browser"),
]


@pytest.mark.parametrize(("header", "expected"), REAL)
def test_describe(header: str, expected: str) -> None:
    assert describe(header) == expected


def test_describe_never_returns_anything_of_the_header() -> None:
    assert describe(HOSTILE) == "Firefox on Windows"
    assert describe(None) == describe(42) == "an unknown browser"
    assert describe("A" * 100_000 + " Firefox/1") == "an unknown browser"  # only the start


@pytest.mark.django_db
def test_the_sign_ins_paused_email_names_the_browser_not_the_header(user: Any) -> None:
    """Over HTTP: whoever knows the password sends a hostile User-Agent and enough wrong
    codes to pause sign-ins; the owner's email says "Firefox on Windows" and the IP."""
    client = Client(HTTP_USER_AGENT=HOSTILE, REMOTE_ADDR="198.51.100.7")
    with otp_settings(LOCKOUT_THRESHOLD=3, VERIFY_DELAY_MAX=0):
        response = client.post("/account/login/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302
        code = last_code()
        for _ in range(3):
            client.post("/account/login/verify/", {"code": wrong_code(code)})
    (message,) = mail.outbox
    assert "paused" in message.subject
    assert "Browser: Firefox on Windows" in message.body
    assert "198.51.100.7" in message.body
    for fragment in ("evil.example", "http", "<a", "href", "click here", "555", "Mozilla"):
        assert fragment not in message.body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "context"),
    [
        ("factor_added", {"factor": "SMS ••• 4567"}),
        ("factor_removed", {"factor": "SMS ••• 4567"}),
        ("recovery_codes_regenerated", {"count": 10}),
        ("recovery_code_used", {"remaining": 9}),
        ("password_changed", {}),
        ("password_reset", {}),
        ("account_locked", {"disabled": True}),
    ],
)
def test_every_notification_names_the_browser_only(
    user: Any, rf: RequestFactory, event: str, context: dict[str, Any]
) -> None:
    request = rf.post("/", HTTP_USER_AGENT=HOSTILE)
    # A caller's own ``user_agent`` cannot slip the header in either.
    assert notify.notify(user, event, request=request, user_agent=HOSTILE, **context) == 1
    (message,) = mail.outbox
    assert "Firefox on Windows" in message.body
    assert "evil.example" not in message.body
    assert "<a" not in message.body


@pytest.mark.django_db
def test_remembered_browsers_are_listed_by_description(user: Any) -> None:
    browser = TrustedBrowser(user=user, user_agent=HOSTILE)
    assert str(browser) == "Firefox on Windows"
