"""System checks: one test per id, and a clean ``manage.py check`` for a sound setup."""

from __future__ import annotations

from io import StringIO
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from otp_auth.checks import check_settings
from otp_auth.providers import BaseProvider, DeliveryResult, OTPMessage
from tests.conftest import otp_settings

EMAIL = "otp_auth.providers.email.EmailProvider"
CONSOLE = "otp_auth.providers.console.ConsoleProvider"
LOCMEM = "otp_auth.providers.locmem.LocmemProvider"

PRODUCTION_OTP_AUTH = {
    "PROVIDERS": {"default": {"BACKEND": EMAIL, "OPTIONS": {"from_email": "otp@example.com"}}},
    "CHANNELS": ["email"],
}


class KeyedProvider(BaseProvider):
    """A provider that cannot work without an API key."""

    provider_name: ClassVar[str] = "keyed"
    required_options: ClassVar[tuple[str, ...]] = ("api_key",)

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        return DeliveryResult(provider=self.provider_name)


SHARED_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
    }
}
LOCMEM_CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SECURE_COOKIES = {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True}


def messages(**otp_auth: Any) -> dict[str, list[str]]:
    """Run the check with ``OTP_AUTH`` replaced by ``otp_auth``: ``{id: [message, ...]}``."""
    with override_settings(OTP_AUTH=otp_auth):
        return collect()


def collect() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in check_settings():
        found.setdefault(message.id, []).append(message.msg)
    return found


def test_production_like_settings_have_no_messages() -> None:
    assert messages(**PRODUCTION_OTP_AUTH) == {}


def test_e001_backend_that_cannot_be_imported() -> None:
    found = messages(PROVIDERS={"default": {"BACKEND": "otp_auth.providers.nope.NopeProvider"}})
    assert list(found) == ["otp_auth.E001"]
    assert "'default'" in found["otp_auth.E001"][0]
    assert "otp_auth.providers.nope.NopeProvider" in found["otp_auth.E001"][0]


def test_e001_backend_that_is_not_a_provider() -> None:
    found = messages(PROVIDERS={"default": {"BACKEND": "collections.OrderedDict"}})
    assert list(found) == ["otp_auth.E001"]
    assert "BaseProvider" in found["otp_auth.E001"][0]


def test_e002_missing_required_option() -> None:
    backend = f"{__name__}.KeyedProvider"
    found = messages(PROVIDERS={"default": {"BACKEND": backend, "OPTIONS": {"api_key": ""}}})
    assert list(found) == ["otp_auth.E002"]
    assert "'api_key'" in found["otp_auth.E002"][0]
    assert "'default'" in found["otp_auth.E002"][0]
    assert (
        messages(PROVIDERS={"default": {"BACKEND": backend, "OPTIONS": {"api_key": "k-123"}}}) == {}
    )


def test_e003_middleware_missing() -> None:
    middleware = [m for m in settings.MIDDLEWARE if m != "otp_auth.middleware.OTPMiddleware"]
    with override_settings(MIDDLEWARE=middleware, OTP_AUTH=PRODUCTION_OTP_AUTH):
        found = collect()
    assert list(found) == ["otp_auth.E003"]
    assert "not in MIDDLEWARE" in found["otp_auth.E003"][0]


def test_e003_middleware_before_authentication() -> None:
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "otp_auth.middleware.OTPMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware, OTP_AUTH=PRODUCTION_OTP_AUTH):
        found = collect()
    assert list(found) == ["otp_auth.E003"]
    assert "AuthenticationMiddleware" in found["otp_auth.E003"][0]


def test_e003_middleware_before_sessions() -> None:
    middleware = [
        "otp_auth.middleware.OTPMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware, OTP_AUTH=PRODUCTION_OTP_AUTH):
        found = collect()
    assert list(found) == ["otp_auth.E003"]
    assert "SessionMiddleware" in found["otp_auth.E003"][0]


def test_e004_code_shorter_than_six() -> None:
    assert list(messages(**PRODUCTION_OTP_AUTH, CODE_LENGTH=5)) == ["otp_auth.E004"]
    assert messages(**PRODUCTION_OTP_AUTH, CODE_LENGTH=6) == {}


def test_e005_development_providers_with_debug_off() -> None:
    for backend in (CONSOLE, LOCMEM):
        with override_settings(DEBUG=False):
            found = messages(PROVIDERS={"default": {"BACKEND": backend}})
        assert list(found) == ["otp_auth.E005"], backend
        assert backend in found["otp_auth.E005"][0]
        with override_settings(DEBUG=True):
            assert messages(PROVIDERS={"default": {"BACKEND": backend}}) == {}


def test_e005_names_only_the_insecure_alias() -> None:
    with override_settings(DEBUG=False):
        found = messages(
            PROVIDERS={"default": {"BACKEND": EMAIL}, "sms": {"BACKEND": CONSOLE}},
            CHANNEL_PROVIDERS={"sms": "sms"},
        )
    assert found == {"otp_auth.E005": [found["otp_auth.E005"][0]]}
    assert "'sms'" in found["otp_auth.E005"][0]


def test_e006_channel_routed_to_unknown_alias() -> None:
    found = messages(**PRODUCTION_OTP_AUTH, CHANNEL_PROVIDERS={"email": "mailgun"})
    assert list(found) == ["otp_auth.E006"]
    assert "'mailgun'" in found["otp_auth.E006"][0]
    assert "'email'" in found["otp_auth.E006"][0]


def test_e006_default_alias_missing_for_a_channel() -> None:
    found = messages(
        PROVIDERS={"mail": {"BACKEND": EMAIL}},
        CHANNEL_PROVIDERS={"email": "mail"},
        CHANNELS=["email", "sms"],
    )
    assert list(found) == ["otp_auth.E006"]
    assert "'sms'" in found["otp_auth.E006"][0]


def test_e007_invalid_settings() -> None:
    for bad in ({"CODE_LENGTH": "six"}, {"MAX_ATTEMPTS": 0}, {"CODE_ALPHABET": "emoji"}):
        found = messages(**PRODUCTION_OTP_AUTH, **bad)
        assert list(found) == ["otp_auth.E007"], bad
        assert next(iter(bad)) in found["otp_auth.E007"][0]
    found = messages(**PRODUCTION_OTP_AUTH, CODE_LENTGH=8)
    assert list(found) == ["otp_auth.E007"]
    assert "CODE_LENTGH" in found["otp_auth.E007"][0]


def test_w001_long_ttl_with_phone_channels() -> None:
    phone = {"PROVIDERS": {"default": {"BACKEND": EMAIL}}, "CHANNELS": ["email", "sms"]}
    assert list(messages(**phone, CODE_TTL=601)) == ["otp_auth.W001"]
    assert messages(**phone, CODE_TTL=600) == {}
    # Email-only sites may keep a code longer.
    assert messages(**PRODUCTION_OTP_AUTH, CODE_TTL=3600) == {}


def test_w002_many_attempts() -> None:
    assert list(messages(**PRODUCTION_OTP_AUTH, MAX_ATTEMPTS=11)) == ["otp_auth.W002"]
    assert messages(**PRODUCTION_OTP_AUTH, MAX_ATTEMPTS=10) == {}


# Django 6 runs database checks as part of `check`.
@pytest.mark.django_db
def test_manage_py_check_is_clean_for_production_like_settings() -> None:
    stdout, stderr = StringIO(), StringIO()
    with override_settings(
        DEBUG=False,
        SILENCED_SYSTEM_CHECKS=[],
        OTP_AUTH=PRODUCTION_OTP_AUTH,
        CACHES=SHARED_CACHES,
        SESSION_COOKIE_SECURE=True,
        CSRF_COOKIE_SECURE=True,
    ):
        call_command("check", stdout=stdout, stderr=stderr)
    assert "System check identified no issues" in stdout.getvalue()
    assert "otp_auth" not in stderr.getvalue()


# Django 6 runs database checks as part of `check`.
@pytest.mark.django_db
def test_manage_py_check_reports_otp_auth_errors() -> None:
    with (
        otp_settings(CODE_LENGTH=4),
        override_settings(SILENCED_SYSTEM_CHECKS=[]),
        pytest.raises(SystemCheckError) as info,
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "otp_auth.E004" in str(info.value)
    assert "otp_auth.E005" in str(info.value)


def deployment(**django: Any) -> dict[str, list[str]]:
    """``check_deployment`` under production-like settings changed by ``django``."""
    from otp_auth.checks import check_deployment

    base: dict[str, Any] = {
        "DEBUG": False,
        "CACHES": SHARED_CACHES,
        "OTP_AUTH": {**settings.OTP_AUTH},
        **SECURE_COOKIES,
    }
    found: dict[str, list[str]] = {}
    with override_settings(**{**base, **django}):
        for message in check_deployment():
            found.setdefault(message.id, []).append(message.msg)
    return found


def test_deployment_checks_pass_for_a_shared_cache_and_secure_cookies() -> None:
    assert deployment() == {}


def test_e060_a_process_local_limits_cache_with_debug_off() -> None:
    found = deployment(CACHES=LOCMEM_CACHES)
    assert list(found) == ["otp_auth.E070"]
    assert "LocMemCache" in found["otp_auth.E070"][0]
    assert deployment(CACHES=LOCMEM_CACHES, DEBUG=True) == {}
    # The alias OTP_AUTH['CACHE'] names is the one judged.
    two = {**SHARED_CACHES, "local": LOCMEM_CACHES["default"]}
    assert deployment(CACHES=two) == {}
    local = {**settings.OTP_AUTH, "CACHE": "local"}
    assert list(deployment(CACHES=two, OTP_AUTH=local)) == ["otp_auth.E070"]


def test_e060_fails_manage_py_check() -> None:
    with (
        override_settings(
            DEBUG=False,
            SILENCED_SYSTEM_CHECKS=[],
            OTP_AUTH=PRODUCTION_OTP_AUTH,
            CACHES=LOCMEM_CACHES,
            **SECURE_COOKIES,
        ),
        pytest.raises(SystemCheckError) as info,
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "otp_auth.E070" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("SESSION_COOKIE_SECURE", False, "otp_auth.W070"),
        ("SESSION_COOKIE_HTTPONLY", False, "otp_auth.W071"),
        ("CSRF_COOKIE_SECURE", False, "otp_auth.W072"),
        ("SESSION_COOKIE_SAMESITE", None, "otp_auth.W073"),
    ],
)
def test_w060_to_w063_insecure_cookie_flags(name: str, value: Any, check_id: str) -> None:
    found = deployment(**{name: value})
    assert list(found) == [check_id]
    assert name in found[check_id][0]
    assert deployment(**{name: value, "DEBUG": True}) == {}


@pytest.mark.parametrize("limit", ["send_budget", "send_per_calling_code", "enroll_send_budget"])
def test_w064_a_site_wide_sms_breaker_turned_off(limit: str) -> None:
    off = {**settings.OTP_AUTH, "RATE_LIMITS": {limit: None}}
    found = deployment(OTP_AUTH=off)
    assert list(found) == ["otp_auth.W074"]
    assert limit in found["otp_auth.W074"][0]
    email_only = {**off, "CHANNELS": ["email"]}
    assert deployment(OTP_AUTH=email_only) == {}


def test_the_test_settings_silence_only_what_the_tests_cannot_avoid() -> None:
    # Everything else from the deployment checks stays on for the suite's own settings.
    from otp_auth.checks import check_deployment

    with override_settings(DEBUG=False):
        ids = {m.id for m in check_deployment()}
    assert ids <= set(settings.SILENCED_SYSTEM_CHECKS)


def test_webauthn_without_an_rp_id_in_production_is_warned():
    from otp_auth.checks import check_webauthn

    with override_settings(DEBUG=False), otp_settings(WEBAUTHN=True):
        assert [m.id for m in check_webauthn()] == ["otp_auth.W095"]
    with override_settings(DEBUG=False), otp_settings(WEBAUTHN=True, WEBAUTHN_RP_ID="example.com"):
        assert check_webauthn() == []
    with override_settings(DEBUG=False), otp_settings(WEBAUTHN=False):
        assert check_webauthn() == []


def test_webauthn_without_its_library_is_an_error(monkeypatch):
    import sys

    from otp_auth.checks import check_webauthn

    monkeypatch.setitem(sys.modules, "webauthn", None)  # import raises ImportError
    with otp_settings(WEBAUTHN=True, WEBAUTHN_RP_ID="example.com"):
        assert [m.id for m in check_webauthn()] == ["otp_auth.E095"]
