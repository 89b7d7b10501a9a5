"""The pages: layout, words a person reads, CSP friendliness, one entry per factor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings

from otp_auth.models import AuditEvent

from .conftest import login_fully, otp_settings

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "otp_auth" / "templates" / "otp_auth"
PAGES = [p for p in TEMPLATES.rglob("*.html") if "messages" not in p.parts]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_page_has_inline_script_or_style(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
    assert "<style" not in text
    assert not re.search(r"\sstyle=", text), "style attribute"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"


def test_the_scripts_and_styles_carry_the_sites_csp_nonce() -> None:
    request = RequestFactory().get("/")
    request.csp_nonce = "n0nc3"  # what Django 6's CSP middleware and django-csp set
    html = Template('{% extends "otp_auth/base.html" %}').render(Context({"request": request}))
    assert '<script src="/static/otp_auth/otp_auth.js" defer nonce="n0nc3">' in html
    assert 'otp_auth.css" nonce="n0nc3">' in html
    plain = Template('{% extends "otp_auth/base.html" %}').render(
        Context({"request": RequestFactory().get("/")})
    )
    assert "nonce" not in plain


def test_channels_read_as_words() -> None:
    template = Template("{% load otp_auth %}{{ c|channel_names }}")
    assert template.render(Context({"c": ["sms", "voice"]})) == "SMS, voice call"
    assert template.render(Context({"c": ["email"]})) == "Email"


def test_the_layout_has_language_direction_site_name_and_account_menu(client, user) -> None:
    login_fully(client)
    with otp_settings(SITE_NAME="Example Bank"):
        page = client.get("/account/devices/").content.decode()
    assert re.search(r'<html lang="en(-us)?" dir="ltr">', page)
    assert '<a class="otp-site" href="/">Example Bank</a>' in page
    assert 'href="/account/">Account security</a>' in page
    assert 'action="/account/logout/"' in page


def test_the_devices_page_says_sms_voice_call(client, user) -> None:
    login_fully(client)
    page = client.get("/account/devices/").content.decode()
    assert "SMS, voice call" in page
    assert "sms, voice" not in page


def test_the_device_form_has_phone_and_email_fields_with_the_right_keyboards(client, make_user):
    client.force_login(make_user(phone=None))
    page = client.get("/account/devices/add/").content.decode()
    phone = re.search(r'<input[^>]*name="phone"[^>]*>', page)
    email = re.search(r'<input[^>]*name="email"[^>]*>', page)
    assert phone and email
    for attr in ('type="tel"', 'inputmode="tel"', 'autocomplete="tel"'):
        assert attr in phone.group(0)
    for attr in ('type="email"', 'autocomplete="email"'):
        assert attr in email.group(0)


def test_the_step_up_page_says_what_is_confirmed_and_can_be_cancelled(client, user) -> None:
    login_fully(client)
    page = client.get("/account/step-up/?next=/account/password/").content.decode()
    assert "To change your password, confirm it is you." in page
    assert re.search(r'<a href="/account/">Cancel</a>', page)


def test_the_account_security_page_sums_up_and_lists_recent_events(client, user) -> None:
    login_fully(client)
    page = client.get("/account/").content.decode()
    assert "Account security" in page
    assert "Signed in with a second factor" in page
    assert AuditEvent.objects.filter(user=user, kind="verified").exists()
    assert "Phone" in page and "SMS, voice call" in page


def test_the_security_page_needs_the_second_factor(client, user) -> None:
    client.force_login(user)  # password only, the user has a device
    response = client.get("/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/verify/")


def test_the_reset_page_lists_each_device_once(client, make_user, outbox, mailoutbox) -> None:
    make_user(email="alice@mail.example")
    client.post("/account/password-reset/", {"identifier": "alice"})
    body = outbox[-1].text if outbox else mailoutbox[-1].body
    client.post("/account/password-reset/code/", {"code": re.search(r"\b(\d{6})\b", body)[1]})
    page = client.get("/account/password-reset/new/").content.decode()
    radios = re.findall(r'<label class="check"[^>]*>(.*?)</label>', page, re.S)
    assert radios, "no factor to choose"
    visible = re.sub(r'aria-label="[^"]*"', "", page)
    # Each factor is named once, in its radio; a send button sits beside it.
    for label in radios:
        name = re.sub(r"<[^>]+>", "", label).strip()
        assert visible.count(name) == 1, name
    assert "Send a code to" not in visible


def test_a_locked_code_page_does_not_ask_for_the_code(client, user) -> None:
    from .conftest import password_step, wrong_code

    password_step(client)
    from .conftest import last_code

    for _ in range(5):
        response = client.post("/account/login/verify/", {"code": wrong_code(last_code())})
    page = response.content.decode()
    assert "This code is now locked" in page
    assert "Enter your code" not in page


def test_the_countdown_text_is_translated_on_the_server(client, user) -> None:
    from .conftest import password_step

    password_step(client)
    page = client.get("/account/login/verify/").content.decode()
    assert 'data-template="(available in %(s)s s)"' in page


@override_settings(LANGUAGE_CODE="en")
def test_enrollment_and_step_up_emails_have_their_own_words(client, make_user, mailoutbox):
    client.force_login(make_user(phone=None))
    client.post("/account/devices/add/", {"channel": "email", "email": "a@example.com"})
    assert mailoutbox[-1].subject == "Confirm your email address"
    assert "confirm this email address" in mailoutbox[-1].body


def test_the_qr_code_has_an_accessible_name(client, make_user) -> None:
    client.force_login(make_user(phone=None))
    page = client.get("/account/authenticator/add/").content.decode()
    assert re.search(r'<div class="qr" role="img" aria-label="[^"]+">', page)


def test_login_page_is_one_primary_action(client: Client) -> None:
    page = client.get("/account/login/").content.decode()
    assert page.count('type="submit"') == 1
