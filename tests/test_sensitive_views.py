"""R92: every page that takes a password or a code hides it from Django's error reports.

The routes are read from ``otp_auth.urls``, so a new page must be listed here with the
secret fields it reads (or none). Each is posted to in the state where it does its work
(signed in, with a fresh second factor), and Django's own error-report filter, given the
request that view processed, must hide each of those fields: removing a view's
``sensitive_post_parameters`` fails this test.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, reverse
from django.views.debug import SafeExceptionReporterFilter

from otp_auth import urls as otp_urls
from tests.conftest import login_fully

pytestmark = pytest.mark.django_db

#: Route name -> the POST fields holding a password or a code that its view reads.
SECRET_FIELDS: dict[str, set[str]] = {
    "login": {"password"},
    "verify": {"code"},
    "resend": set(),
    "switch": set(),
    "cancel": set(),
    "logout": set(),
    "security": set(),
    "devices": set(),
    "device_add": set(),
    "device_confirm": {"code"},
    "device_remove": set(),
    "step_up": {"code"},
    "totp_add": {"code"},
    "totp_remove": set(),
    "recovery_codes": set(),
    "trusted_forget_all": set(),
    "trusted_forget": set(),
    "end_other_sessions": set(),
    "password_change": {"old_password", "new_password1", "new_password2"},
    "password_reset": set(),
    "password_reset_verify": {"code"},
    "password_reset_new": {"new_password1", "new_password2", "code"},
    "password_reset_send": set(),
    # An authenticator's answer is signed for one challenge: nothing to hide, but hidden.
    "webauthn_options": set(),
    "webauthn_add": {"credential"},
    "webauthn_remove": set(),
    "webauthn_login": {"credential"},
    "passkey_login": {"credential"},
    "webauthn_step_up": {"credential"},
    "code_login": set(),
    "code_login_verify": {"code"},
}
#: Called by providers, not people: they carry delivery reports.
NOT_PAGES = {"webhook", "webhook_token"}


def routes() -> list[URLPattern]:
    return [p for p in otp_urls.urlpatterns if isinstance(p, URLPattern)]


def test_every_route_is_listed():
    names = {p.name for p in routes()} - NOT_PAGES
    assert names == set(SECRET_FIELDS)


@pytest.mark.parametrize("name", sorted(n for n, fields in SECRET_FIELDS.items() if fields))
def test_the_secret_fields_are_hidden_from_error_reports(client, user, name):
    login_fully(client)  # signed in with a second factor just now: no page turns us away
    pattern = next(p for p in routes() if p.name == name)
    kwargs = dict.fromkeys(pattern.pattern.converters, 1)
    fields = SECRET_FIELDS[name]
    sentinel = {field: f"secret-{field}-value" for field in fields}

    response = client.post(reverse(f"otp_auth:{name}", kwargs=kwargs), sentinel)

    request: Any = response.wsgi_request
    shown = SafeExceptionReporterFilter().get_post_parameters(request)
    hidden = SafeExceptionReporterFilter.cleansed_substitute
    assert {field: shown[field] for field in fields} == dict.fromkeys(fields, hidden)


def test_an_api_crash_report_shows_no_code_or_password(monkeypatch, user, rf):
    """Django's error report lists every frame's local variables: those of the API
    handlers and of everything they call are hidden (``OTPAPIView``)."""
    from django.views.debug import ExceptionReporter
    from rest_framework.test import APIClient

    from otp_auth.services import api_flow

    secrets_seen: list[str] = []

    def crash(token: object, code: object, **kwargs: Any) -> Any:
        secrets_seen.append(str(code))
        raise RuntimeError("boom")

    monkeypatch.setattr(api_flow, "complete_login", crash)
    client = APIClient()
    client.raise_request_exception = True
    started = client.post(
        "/api/login/", {"username": "alice", "password": "correct horse battery staple"}
    )
    code = "918273"
    with pytest.raises(RuntimeError) as info:
        client.post("/api/login/verify/", {"challenge": started.json()["challenge"], "code": code})

    request = rf.post("/api/login/verify/")
    frames = ExceptionReporter(request, info.type, info.value, info.tb).get_traceback_frames()
    # The frames a server has: Django's handler down to the crash (not this test's own,
    # nor the test client's, which hold the request body they sent).
    served = [
        f
        for f in frames
        if any(part in f["filename"] for part in ("/otp_auth/", "/rest_framework/", "/handlers/"))
        and not f["filename"].endswith("rest_framework/test.py")
        or f["function"] == "crash"
    ]
    shown = repr([frame["vars"] for frame in served])
    assert secrets_seen == [code]
    assert any(frame["function"] == "crash" for frame in frames)  # the frames are there...
    assert code not in shown  # ...their values are not
