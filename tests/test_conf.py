"""Settings: defaults, the two ways to set a value, and a precise error for every bad one."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from otp_auth.conf import ALPHABETS, CONSOLE_BACKEND, DEFAULTS, Circuit, app_settings
from otp_auth.exceptions import ConfigurationError


@pytest.fixture
def bare(settings: Any) -> Any:
    """Settings without any ``OTP_AUTH`` configuration."""
    del settings.OTP_AUTH
    return settings


def test_defaults_without_any_configuration(bare: Any) -> None:
    assert app_settings.CODE_LENGTH == 6
    assert app_settings.CODE_ALPHABET == "0123456789"
    assert app_settings.CODE_TTL == 600
    assert app_settings.MAX_ATTEMPTS == 5
    assert app_settings.RESEND_COOLDOWN == 60
    assert app_settings.MAX_RESENDS == 3
    assert app_settings.LOGIN_TIMEOUT == 600
    assert app_settings.STEP_UP_MAX_AGE == 300
    circuit = Circuit(5, 60, 30)
    expected = {"default": {"BACKEND": CONSOLE_BACKEND, "OPTIONS": {}, "CIRCUIT": circuit}}
    providers = app_settings.PROVIDERS
    assert providers == expected
    assert app_settings.CHANNEL_PROVIDERS == {}
    assert app_settings.CHANNELS == ["sms", "voice", "email"]
    assert app_settings.REQUIRE_ENROLLMENT is False
    assert app_settings.ENFORCE is True
    assert app_settings.EXEMPT_URL_NAMES == []
    assert app_settings.EXEMPT_PATHS == []
    assert app_settings.ADMIN_LOGIN_REDIRECT is True
    assert app_settings.DEFAULT_REGION is None
    assert app_settings.ALLOWED_COUNTRIES is None
    assert app_settings.SITE_NAME is None
    assert app_settings.provider_alias_for("sms") == "default"


def test_login_redirect_url_falls_back_to_django_setting(bare: Any) -> None:
    bare.LOGIN_REDIRECT_URL = "/dashboard/"
    assert app_settings.LOGIN_REDIRECT_URL == "/dashboard/"


def test_every_default_has_an_accessor() -> None:
    for name in DEFAULTS:
        getattr(app_settings, name)


def test_values_from_the_otp_auth_dict(bare: Any) -> None:
    bare.OTP_AUTH = {
        "CODE_LENGTH": 8,
        "CODE_ALPHABET": "alphanumeric",
        "MAX_ATTEMPTS": 3,
        "CHANNELS": ("email",),
        "CHANNEL_PROVIDERS": {"email": "mail"},
        "DEFAULT_REGION": "gh",
        "ALLOWED_COUNTRIES": ["gh", "ng"],
        "SITE_NAME": "Example",
        "LOGIN_REDIRECT_URL": "/welcome/",
    }
    assert app_settings.CODE_LENGTH == 8
    assert ALPHABETS["alphanumeric"] == app_settings.CODE_ALPHABET
    assert app_settings.MAX_ATTEMPTS == 3
    assert app_settings.CHANNELS == ["email"]
    assert app_settings.provider_alias_for("email") == "mail"
    assert app_settings.provider_alias_for("sms") == "default"
    assert app_settings.DEFAULT_REGION == "GH"
    assert frozenset({"GH", "NG"}) == app_settings.ALLOWED_COUNTRIES
    assert app_settings.SITE_NAME == "Example"
    assert app_settings.LOGIN_REDIRECT_URL == "/welcome/"


def test_values_from_prefixed_settings(bare: Any) -> None:
    bare.OTP_AUTH_CODE_TTL = 300
    bare.OTP_AUTH_ENFORCE = False
    bare.OTP_AUTH_PROVIDERS = {"default": {"BACKEND": "otp_auth.providers.email.EmailProvider"}}
    assert app_settings.CODE_TTL == 300
    assert app_settings.ENFORCE is False
    circuit = Circuit(5, 60, 30)
    email = {"BACKEND": "otp_auth.providers.email.EmailProvider", "OPTIONS": {}}
    providers = app_settings.PROVIDERS
    assert providers == {"default": {**email, "CIRCUIT": circuit}}


def test_dict_wins_over_prefixed_setting(bare: Any) -> None:
    bare.OTP_AUTH = {"CODE_TTL": 120}
    bare.OTP_AUTH_CODE_TTL = 300
    bare.OTP_AUTH_MAX_ATTEMPTS = 7
    assert app_settings.CODE_TTL == 120
    assert app_settings.MAX_ATTEMPTS == 7


def test_override_settings_takes_effect_at_once() -> None:
    assert app_settings.CODE_TTL == 600
    with override_settings(OTP_AUTH={"CODE_TTL": 90}):
        assert app_settings.CODE_TTL == 90
        with override_settings(OTP_AUTH_MAX_RESENDS=1):
            assert app_settings.MAX_RESENDS == 1
        assert app_settings.MAX_RESENDS == 3
    assert app_settings.CODE_TTL == 600


BAD_VALUES = [
    # (key, value, text the message must contain)
    ("CODE_LENGTH", "6", "CODE_LENGTH"),
    ("CODE_LENGTH", 6.0, "CODE_LENGTH"),
    ("CODE_LENGTH", True, "CODE_LENGTH"),
    ("CODE_LENGTH", 3, "CODE_LENGTH"),
    ("CODE_LENGTH", 17, "CODE_LENGTH"),
    ("CODE_ALPHABET", "hex", "CODE_ALPHABET"),
    ("CODE_ALPHABET", None, "CODE_ALPHABET"),
    ("CODE_TTL", 29, "CODE_TTL"),
    ("CODE_TTL", 86_401, "CODE_TTL"),
    ("CODE_TTL", "600", "CODE_TTL"),
    ("MAX_ATTEMPTS", 0, "MAX_ATTEMPTS"),
    ("MAX_ATTEMPTS", 101, "MAX_ATTEMPTS"),
    ("MAX_ATTEMPTS", None, "MAX_ATTEMPTS"),
    ("RESEND_COOLDOWN", -1, "RESEND_COOLDOWN"),
    ("RESEND_COOLDOWN", 3601, "RESEND_COOLDOWN"),
    ("MAX_RESENDS", -1, "MAX_RESENDS"),
    ("MAX_RESENDS", 21, "MAX_RESENDS"),
    ("LOGIN_TIMEOUT", 10, "LOGIN_TIMEOUT"),
    ("STEP_UP_MAX_AGE", -5, "STEP_UP_MAX_AGE"),
    ("STEP_UP_MAX_AGE", 1.5, "STEP_UP_MAX_AGE"),
    ("PROVIDERS", {}, "PROVIDERS"),
    ("PROVIDERS", [], "PROVIDERS"),
    ("PROVIDERS", "otp_auth.providers.console.ConsoleProvider", "PROVIDERS"),
    ("PROVIDERS", {"default": "otp_auth.providers.console.ConsoleProvider"}, "'default'"),
    ("PROVIDERS", {"default": {"OPTIONS": {}}}, "BACKEND"),
    ("PROVIDERS", {"sms": {"BACKEND": 42}}, "'sms'"),
    ("PROVIDERS", {"default": {"BACKEND": CONSOLE_BACKEND, "OPTIONS": ["k"]}}, "OPTIONS"),
    ("CHANNEL_PROVIDERS", ["email"], "CHANNEL_PROVIDERS"),
    ("CHANNEL_PROVIDERS", {"whatsapp": "default"}, "whatsapp"),
    ("CHANNELS", "sms", "CHANNELS"),
    ("CHANNELS", [], "CHANNELS"),
    ("CHANNELS", ["sms", "fax"], "CHANNELS"),
    ("CHANNELS", [1], "CHANNELS"),
    ("REQUIRE_ENROLLMENT", "yes", "REQUIRE_ENROLLMENT"),
    ("ENFORCE", 1, "ENFORCE"),
    ("ADMIN_LOGIN_REDIRECT", None, "ADMIN_LOGIN_REDIRECT"),
    ("EXEMPT_URL_NAMES", "home", "EXEMPT_URL_NAMES"),
    ("EXEMPT_PATHS", ["/ok/", None], "EXEMPT_PATHS"),
    ("DEFAULT_REGION", "GHA", "DEFAULT_REGION"),
    ("DEFAULT_REGION", 233, "DEFAULT_REGION"),
    ("ALLOWED_COUNTRIES", "GH", "ALLOWED_COUNTRIES"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD_VALUES)
def test_bad_value_in_dict_raises_naming_the_key(key: str, value: Any, named: str) -> None:
    with (
        override_settings(OTP_AUTH={key: value}),
        pytest.raises(ImproperlyConfigured, match=named) as info,
    ):
        getattr(app_settings, key)
    assert isinstance(info.value, ConfigurationError)
    assert key in str(info.value)


@pytest.mark.parametrize(("key", "value", "named"), BAD_VALUES[:12])
def test_bad_prefixed_setting_raises_naming_the_key(key: str, value: Any, named: str) -> None:
    with (
        override_settings(OTP_AUTH={}, **{f"OTP_AUTH_{key}": value}),
        pytest.raises(ConfigurationError, match=named),
    ):
        getattr(app_settings, key)


def test_unknown_key_raises_naming_it() -> None:
    with (
        override_settings(OTP_AUTH={"CODE_LENGHT": 8}),
        pytest.raises(ImproperlyConfigured, match="CODE_LENGHT"),
    ):
        # Any accessor refuses, so a typo cannot silently keep a default.
        app_settings.CODE_TTL  # noqa: B018


def test_otp_auth_must_be_a_dict() -> None:
    with (
        override_settings(OTP_AUTH=[("CODE_TTL", 60)]),
        pytest.raises(ImproperlyConfigured, match="OTP_AUTH"),
    ):
        app_settings.CODE_TTL  # noqa: B018


@pytest.mark.parametrize(
    ("key", "value"),
    [("CODE_LENGTH", 4), ("CODE_LENGTH", 16), ("CODE_TTL", 30), ("RESEND_COOLDOWN", 0)],
)
def test_bounds_are_inclusive(key: str, value: int) -> None:
    with override_settings(OTP_AUTH={key: value}):
        assert getattr(app_settings, key) == value
