"""Answers over HTTP: no code echoed, no cached password page, and a 4xx/503 with a stable
code instead of a 500 for unreadable bodies and a busy database, on every route."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from otp_auth.models import Device
from otp_auth.services import password_reset as reset_service
from tests.conftest import last_code, login_fully
from tests.test_password_reset import (
    NEW,
    email_code,
    email_device,
    granted,
)

pytestmark = pytest.mark.django_db

BAD_CHARSETS = ["utf-16", "latin-1", "rot13", "zlib", "base64", "idna", "undefined", "bogus"]
MULTIPART = (
    b'--xx\r\nContent-Disposition: form-data; name="username"\r\n\r\n\xff\xfe\xff\r\n'
    b'--xx\r\nContent-Disposition: form-data; name="code"\r\n\r\n12\\u34\r\n--xx--\r\n'
)


@pytest.fixture
def alice(make_user: Any) -> Any:
    from django.utils import timezone

    user = make_user("alice", email="alice@mail.example")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def _routes(namespace: str) -> list[str]:
    """A concrete path for every pattern of ``namespace`` (1 for every int/str argument)."""
    resolver = get_resolver()
    module = resolver.namespace_dict[namespace][1].urlconf_module
    paths = []
    for entry in module.urlpatterns:
        assert isinstance(entry, URLPattern)
        kwargs = dict.fromkeys(entry.pattern.converters, "1")
        paths.append(reverse(f"{namespace}:{entry.name}", kwargs=kwargs))
    return paths


# The reset page never echoes a second-factor code ------------------------------------


def test_a_valid_second_factor_code_is_never_echoed_into_the_reset_page(client, alice):
    granted(client)
    factor = f"device:{email_device(alice).pk}"
    client.post("/account/password-reset/send/", {"factor": factor})
    code = email_code()
    bodies = []
    # The code is valid but the passwords do not match: the form is shown again.
    data = {"new_password1": "a long passphrase 1", "new_password2": "different passphrase"}
    response = client.post(NEW, {**data, "factor": factor, "code": code})
    assert response.status_code == 200
    bodies.append(response.content)
    # Too short a password beside the code: shown again as well.
    response = client.post(
        NEW, {"new_password1": "x", "new_password2": "x", "factor": factor, "code": code}
    )
    bodies.append(response.content)
    bodies.append(client.get(NEW).content)
    for body in bodies:
        assert code.encode() not in body
        assert not re.search(rb'name="code"[^>]*value=', body)


def test_no_code_page_echoes_a_submitted_code(client, alice):
    client.post(
        "/account/login/", {"username": "alice", "password": "correct horse battery staple"}
    )
    code = last_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = client.post("/account/login/verify/", {"code": wrong})
    assert wrong.encode() not in response.content


# The password change page is never cached ---------------------------------------------


def test_the_password_change_page_is_never_cached(client, alice, settings):
    login_fully(client)
    response = client.get("/account/password/", follow=False)
    assert "no-store" in response["Cache-Control"]


# Bodies that cannot be read -------------------------------------------------------------


def test_deeply_nested_json_is_a_400_parse_error_on_every_api_route(user):
    pytest.importorskip("rest_framework")
    from rest_framework.test import APIClient

    from tests.api.conftest import log_in

    signed_in = APIClient()
    token = log_in(signed_in)
    api = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")
    body = "[" * 50_000 + "]" * 50_000
    for route in _routes("otp_auth_api"):
        if route.endswith(("/csrf/", "/schema/", "/me/", "/webauthn/")) and "login" not in route:
            continue  # GET only
        response = api.generic("POST", route, body, content_type="application/json")
        if route.endswith("/logout/"):
            assert response.status_code == 204  # reads no body
            continue
        assert response.status_code == 400, (route, response.status_code)
        assert response.json()["code"] == "parse_error", route


def test_deeply_nested_json_on_the_login_step_is_parse_error():
    pytest.importorskip("rest_framework")
    api = Client(raise_request_exception=False)
    body = '{"username": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = api.generic("POST", "/api/login/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("charset", BAD_CHARSETS)
def test_a_form_in_another_charset_is_a_400_on_every_html_route(charset):
    # With the CSRF check on, as in production: the middleware reads the body first.
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    for route in _routes("otp_auth"):
        for content_type, body in (
            (f"multipart/form-data; boundary=xx; charset={charset}", MULTIPART),
            (f"application/x-www-form-urlencoded; charset={charset}", b"code=\xff\xfe"),
        ):
            response = browser.generic("POST", route, body, content_type=content_type)
            assert response.status_code == 400, (route, charset, response.status_code)
            assert b"invalid_encoding" in response.content, route


@pytest.mark.parametrize("charset", BAD_CHARSETS)
def test_a_body_in_another_charset_is_a_4xx_on_every_api_route(charset):
    pytest.importorskip("rest_framework")
    api = Client(raise_request_exception=False)
    for route in _routes("otp_auth_api"):
        for content_type, body in (
            (f"application/json; charset={charset}", b'{"username": "\xff\xfe"}'),
            (f"multipart/form-data; boundary=xx; charset={charset}", MULTIPART),
        ):
            response = api.generic("POST", route, body, content_type=content_type)
            assert 400 <= response.status_code < 500, (route, charset, response.status_code)
            if response["Content-Type"] == "application/json":  # not the schema's YAML
                assert json.loads(response.content)["code"], route


def test_a_utf8_form_still_works_with_the_csrf_check(alice):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/account/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token
    data = {
        "csrfmiddlewaretoken": token.group(1).decode(),
        "username": "alice",
        "password": "correct horse battery staple",
    }
    assert browser.post("/account/login/", data).status_code == 302
    # And without a token the CSRF check still refuses (it runs inside the wrapper).
    other = Client(enforce_csrf_checks=True)
    assert (
        other.post("/account/login/", data | {"csrfmiddlewaretoken": "x" * 64}).status_code == 403
    )


# A busy database --------------------------------------------------------------------------


def test_a_locked_database_is_a_503_with_retry_after_html(client, alice, monkeypatch):
    def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(reset_service, "request_reset", locked)
    response = client.post("/account/password-reset/", {"identifier": "alice"})
    assert response.status_code == 503
    assert response["Retry-After"]
    assert b"busy" in response.content


def test_a_locked_database_is_a_503_with_retry_after_api(alice, monkeypatch):
    pytest.importorskip("rest_framework")
    from rest_framework.test import APIClient

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(reset_service, "request_reset", locked)
    response = APIClient().post("/api/password-reset/", {"identifier": "alice"})
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["code"] == "busy"


def test_other_database_errors_are_not_hidden(client, alice, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("no such table: otp_auth_passwordreset")

    monkeypatch.setattr(reset_service, "request_reset", broken)
    with pytest.raises(OperationalError):
        client.post("/account/password-reset/", {"identifier": "alice"})
