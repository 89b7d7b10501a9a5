"""System checks for the API: otp_auth.W010 and otp_auth.E010 (R66, R67)."""

from __future__ import annotations

import pytest

pytest.importorskip("rest_framework")

from django.core.checks import run_checks  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import override_settings  # noqa: E402

from otp_auth.checks import check_api  # noqa: E402
from otp_auth.conf import app_settings  # noqa: E402


def ids(messages):
    return [m.id for m in messages]


def test_the_test_project_passes():
    assert check_api() == []


# Django 6 runs database checks as part of `check`.
@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.api.urls_password_token")
def test_a_routed_password_only_token_view_is_warned_about():
    messages = check_api()
    assert ids(messages) == ["otp_auth.W010"]
    assert "/nested/token/" in messages[0].msg and "/custom-token/" in messages[0].msg
    assert "otp_auth.W010" in ids(run_checks(include_deployment_checks=False))


@override_settings(ROOT_URLCONF="tests.api.urls_password_token", OTP_AUTH_ENFORCE=False)
def test_no_warning_when_the_second_factor_is_not_enforced():
    assert check_api() == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("tests.api.test_checks.no_such_issuer", "cannot be imported"),
        ("tests.api.test_checks.NOT_CALLABLE", "not callable"),
        ("jwt please", "must be 'token', 'session'"),
    ],
)
def test_an_unusable_api_credential_is_an_error(value, fragment):
    with override_settings(OTP_AUTH_API_CREDENTIAL=value):
        messages = check_api()
    assert ids(messages) == ["otp_auth.E010"]
    assert fragment in messages[0].msg


NOT_CALLABLE = "a string"


def test_token_credential_needs_the_authtoken_app(settings):
    settings.INSTALLED_APPS = [
        a for a in settings.INSTALLED_APPS if a != "rest_framework.authtoken"
    ]
    assert ids(check_api()) == ["otp_auth.E010"]


@pytest.mark.parametrize("value", [None, 3, "", "token ", ["token"], "no_dot"])
def test_api_credential_setting_is_validated(value):
    with override_settings(OTP_AUTH_API_CREDENTIAL=value), pytest.raises(ImproperlyConfigured):
        app_settings.API_CREDENTIAL  # noqa: B018


@pytest.mark.parametrize("value", ["token", "session", "myproject.auth.issue_jwt"])
def test_api_credential_accepts_its_three_forms(value):
    with override_settings(OTP_AUTH_API_CREDENTIAL=value):
        assert value == app_settings.API_CREDENTIAL
