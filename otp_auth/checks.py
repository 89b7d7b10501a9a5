"""System checks ``otp_auth.E0NN`` (errors) and ``otp_auth.W0NN`` (warnings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings

__all__ = ["check_settings"]

MIDDLEWARE_PATH = "otp_auth.middleware.OTPMiddleware"
SESSION_MW = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MW = "django.contrib.auth.middleware.AuthenticationMiddleware"
MAX_PHONE_TTL = 600


@register(Tags.security)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        length = app_settings.CODE_LENGTH
        ttl = app_settings.CODE_TTL
        attempts = app_settings.MAX_ATTEMPTS
        providers = app_settings.PROVIDERS
        channel_map = app_settings.CHANNEL_PROVIDERS
        channels = app_settings.CHANNELS
        app_settings.CODE_ALPHABET  # noqa: B018 - validates the value
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]

    messages += _check_providers(providers, channel_map, channels)
    messages += _check_middleware()
    if length < 6:
        messages.append(
            Error(
                f"OTP_AUTH['CODE_LENGTH'] is {length}: fewer than 6 characters is guessable.",
                hint="Use 6 or more (NIST SP 800-63B-4 §3.1.3).",
                id="otp_auth.E004",
            )
        )
    if ttl > MAX_PHONE_TTL and any(c in ("sms", "voice") for c in channels):
        messages.append(
            Warning(
                f"OTP_AUTH['CODE_TTL'] is {ttl} s; SMS and voice codes should expire within "
                f"{MAX_PHONE_TTL} s.",
                hint="Lower CODE_TTL to 600 or less.",
                id="otp_auth.W001",
            )
        )
    if attempts > 10:
        messages.append(
            Warning(
                f"OTP_AUTH['MAX_ATTEMPTS'] is {attempts}: each challenge allows that many guesses.",
                hint="Keep it at 10 or below (default 5).",
                id="otp_auth.W002",
            )
        )
    return messages


def _check_providers(
    providers: dict[str, dict[str, Any]], channel_map: dict[str, str], channels: list[str]
) -> list[CheckMessage]:
    from .providers import get_provider

    messages: list[CheckMessage] = []
    for channel in channels:
        alias = channel_map.get(channel, "default")
        if alias not in providers:
            messages.append(
                Error(
                    f"Channel {channel!r} is routed to provider alias {alias!r}, which "
                    "OTP_AUTH['PROVIDERS'] does not define.",
                    hint="Add the alias to PROVIDERS or fix CHANNEL_PROVIDERS.",
                    id="otp_auth.E006",
                )
            )
    for alias, conf in providers.items():
        try:
            provider = get_provider(alias)
        except ImproperlyConfigured as exc:
            missing = "missing" in str(exc)
            messages.append(
                Error(
                    str(exc),
                    hint="Set the named OPTIONS key." if missing else "Fix the BACKEND path.",
                    id="otp_auth.E002" if missing else "otp_auth.E001",
                )
            )
            continue
        if provider.insecure and not settings.DEBUG:
            messages.append(
                Error(
                    f"Provider {alias!r} ({conf['BACKEND']}) is for development and tests "
                    "only, and DEBUG is False.",
                    hint="Configure a real provider (email, Arkesel, Twilio) in production.",
                    id="otp_auth.E005",
                )
            )
    return messages


def _check_middleware() -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", []) or [])
    if MIDDLEWARE_PATH not in middleware:
        return [
            Error(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: the second factor is not enforced.",
                hint=f"Add it after {AUTH_MW}.",
                id="otp_auth.E003",
            )
        ]
    position = middleware.index(MIDDLEWARE_PATH)
    for required in (SESSION_MW, AUTH_MW):
        if required not in middleware or middleware.index(required) > position:
            return [
                Error(
                    f"{MIDDLEWARE_PATH} must come after {required}.",
                    hint="Reorder MIDDLEWARE.",
                    id="otp_auth.E003",
                )
            ]
    return []
