"""Typed, lazily read settings: the only place where defaults live.

Each value is read from the ``OTP_AUTH`` dict first, then from an ``OTP_AUTH_<NAME>``
setting, then falls back to the default below. Nothing is cached, so
``override_settings`` works without reload hooks. Bad values raise ``ConfigurationError``
(an ``ImproperlyConfigured``) naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from .constants import Channel
from .exceptions import ConfigurationError

__all__ = ["DEFAULTS", "AppSettings", "app_settings"]

CONSOLE_BACKEND = "otp_auth.providers.console.ConsoleProvider"

DEFAULTS: dict[str, Any] = {
    "CODE_LENGTH": 6,
    "CODE_ALPHABET": "numeric",
    "CODE_TTL": 600,
    "MAX_ATTEMPTS": 5,
    "RESEND_COOLDOWN": 60,
    "MAX_RESENDS": 3,
    "LOGIN_TIMEOUT": 600,
    "STEP_UP_MAX_AGE": 300,
    "PROVIDERS": {"default": {"BACKEND": CONSOLE_BACKEND, "OPTIONS": {}}},
    "CHANNEL_PROVIDERS": {},
    "CHANNELS": [Channel.SMS.value, Channel.VOICE.value, Channel.EMAIL.value],
    "REQUIRE_ENROLLMENT": False,
    "ENFORCE": True,
    "EXEMPT_URL_NAMES": [],
    "EXEMPT_PATHS": [],
    "ADMIN_LOGIN_REDIRECT": True,
    "DEFAULT_REGION": None,
    "ALLOWED_COUNTRIES": None,
    "LOGIN_REDIRECT_URL": None,
    "SITE_NAME": None,
}

ALPHABETS = {
    "numeric": "0123456789",
    # No 0/O, 1/I/L: codes are read off phones and typed by people.
    "alphanumeric": "23456789ABCDEFGHJKMNPQRSTUVWXYZ",
}


def _int(name: str, value: Any, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be an integer, got {value!r}.")
    if not minimum <= value <= maximum:
        raise ConfigurationError(
            f"OTP_AUTH['{name}'] must be between {minimum} and {maximum}, got {value}."
        )
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be True or False, got {value!r}.")
    return value


def _str_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be a list of strings.")
    if not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be a list of strings.")
    return list(value)


class AppSettings:
    """Accessors for ``OTP_AUTH`` settings; see the README's settings reference."""

    def _get(self, name: str) -> Any:
        namespace = getattr(settings, "OTP_AUTH", None) or {}
        if not isinstance(namespace, Mapping):
            raise ConfigurationError("settings.OTP_AUTH must be a dict.")
        unknown = set(namespace) - set(DEFAULTS)
        if unknown:
            raise ConfigurationError(
                f"Unknown key(s) in settings.OTP_AUTH: {', '.join(sorted(unknown))}."
            )
        if name in namespace:
            return namespace[name]
        return getattr(settings, f"OTP_AUTH_{name}", DEFAULTS[name])

    @property
    def CODE_LENGTH(self) -> int:  # noqa: N802
        """Characters per code. Below 6 is refused by the system check ``otp_auth.E004``."""
        return _int("CODE_LENGTH", self._get("CODE_LENGTH"), minimum=4, maximum=16)

    @property
    def CODE_ALPHABET(self) -> str:  # noqa: N802
        """``"numeric"`` (default) or ``"alphanumeric"``; returns the characters used."""
        value = self._get("CODE_ALPHABET")
        if value not in ALPHABETS:
            raise ConfigurationError(
                f"OTP_AUTH['CODE_ALPHABET'] must be one of {sorted(ALPHABETS)}, got {value!r}."
            )
        return ALPHABETS[value]

    @property
    def CODE_TTL(self) -> int:  # noqa: N802
        """Seconds a sent code stays valid (600)."""
        return _int("CODE_TTL", self._get("CODE_TTL"), minimum=30, maximum=86_400)

    @property
    def MAX_ATTEMPTS(self) -> int:  # noqa: N802
        """Wrong codes a challenge takes before it locks (5)."""
        return _int("MAX_ATTEMPTS", self._get("MAX_ATTEMPTS"), minimum=1, maximum=100)

    @property
    def RESEND_COOLDOWN(self) -> int:  # noqa: N802
        """Seconds between two sends for the same challenge (60)."""
        return _int("RESEND_COOLDOWN", self._get("RESEND_COOLDOWN"), minimum=0, maximum=3600)

    @property
    def MAX_RESENDS(self) -> int:  # noqa: N802
        """Resends allowed per challenge after the first send (3)."""
        return _int("MAX_RESENDS", self._get("MAX_RESENDS"), minimum=0, maximum=20)

    @property
    def LOGIN_TIMEOUT(self) -> int:  # noqa: N802
        """Seconds between the password step and the code step before the flow restarts."""
        return _int("LOGIN_TIMEOUT", self._get("LOGIN_TIMEOUT"), minimum=30, maximum=86_400)

    @property
    def STEP_UP_MAX_AGE(self) -> int:  # noqa: N802
        """Seconds a step-up verification counts as fresh for sensitive actions (300)."""
        return _int("STEP_UP_MAX_AGE", self._get("STEP_UP_MAX_AGE"), minimum=0, maximum=86_400)

    @property
    def PROVIDERS(self) -> dict[str, dict[str, Any]]:  # noqa: N802
        """Provider aliases: ``{"alias": {"BACKEND": "dotted.path", "OPTIONS": {...}}}``."""
        value = self._get("PROVIDERS")
        if not isinstance(value, Mapping) or not value:
            raise ConfigurationError("OTP_AUTH['PROVIDERS'] must be a non-empty dict of aliases.")
        providers: dict[str, dict[str, Any]] = {}
        for alias, conf in value.items():
            if not isinstance(conf, Mapping) or not isinstance(conf.get("BACKEND"), str):
                raise ConfigurationError(
                    f"OTP_AUTH['PROVIDERS']['{alias}'] needs a 'BACKEND' dotted path."
                )
            options = conf.get("OPTIONS", {})
            if not isinstance(options, Mapping):
                raise ConfigurationError(
                    f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS'] must be a dict."
                )
            providers[alias] = {"BACKEND": conf["BACKEND"], "OPTIONS": dict(options)}
        return providers

    @property
    def CHANNEL_PROVIDERS(self) -> dict[str, str]:  # noqa: N802
        """Channel to provider alias, e.g. ``{"email": "mail"}``; unlisted use ``default``."""
        value = self._get("CHANNEL_PROVIDERS")
        if not isinstance(value, Mapping):
            raise ConfigurationError("OTP_AUTH['CHANNEL_PROVIDERS'] must be a dict.")
        for channel in value:
            if channel not in Channel.values:
                raise ConfigurationError(
                    f"OTP_AUTH['CHANNEL_PROVIDERS'] has unknown channel {channel!r}; "
                    f"use one of {Channel.values}."
                )
        return dict(value)

    @property
    def CHANNELS(self) -> list[str]:  # noqa: N802
        """Channels users may enroll and receive codes on."""
        value = _str_list("CHANNELS", self._get("CHANNELS"))
        bad = [c for c in value if c not in Channel.values]
        if bad or not value:
            raise ConfigurationError(
                f"OTP_AUTH['CHANNELS'] must be a non-empty subset of {Channel.values}."
            )
        return value

    @property
    def REQUIRE_ENROLLMENT(self) -> bool:  # noqa: N802
        """True: users without a device must add one before using the site."""
        return _bool("REQUIRE_ENROLLMENT", self._get("REQUIRE_ENROLLMENT"))

    @property
    def ENFORCE(self) -> bool:  # noqa: N802
        """True: the middleware sends unverified sessions to the second factor."""
        return _bool("ENFORCE", self._get("ENFORCE"))

    @property
    def EXEMPT_URL_NAMES(self) -> list[str]:  # noqa: N802
        """URL names (``"namespace:name"``) reachable by an unverified session."""
        return _str_list("EXEMPT_URL_NAMES", self._get("EXEMPT_URL_NAMES"))

    @property
    def EXEMPT_PATHS(self) -> list[str]:  # noqa: N802
        """Path prefixes reachable by an unverified session (static files are always)."""
        return _str_list("EXEMPT_PATHS", self._get("EXEMPT_PATHS"))

    @property
    def ADMIN_LOGIN_REDIRECT(self) -> bool:  # noqa: N802
        """True: the admin's login page sends anonymous users to the two-step login."""
        return _bool("ADMIN_LOGIN_REDIRECT", self._get("ADMIN_LOGIN_REDIRECT"))

    @property
    def DEFAULT_REGION(self) -> str | None:  # noqa: N802
        """Region used to parse numbers typed without ``+`` (e.g. ``"GH"``)."""
        value = self._get("DEFAULT_REGION")
        if value is not None and (not isinstance(value, str) or len(value) != 2):
            raise ConfigurationError("OTP_AUTH['DEFAULT_REGION'] must be a 2-letter region.")
        return value.upper() if value else None

    @property
    def ALLOWED_COUNTRIES(self) -> frozenset[str] | None:  # noqa: N802
        """Region codes phone numbers may belong to; ``None`` allows every country."""
        value = self._get("ALLOWED_COUNTRIES")
        if value is None:
            return None
        return frozenset(v.upper() for v in _str_list("ALLOWED_COUNTRIES", value))

    @property
    def LOGIN_REDIRECT_URL(self) -> str:  # noqa: N802
        """Where a completed login goes without a safe ``next``; Django's setting by default."""
        value = self._get("LOGIN_REDIRECT_URL")
        return str(value or settings.LOGIN_REDIRECT_URL)

    @property
    def SITE_NAME(self) -> str | None:  # noqa: N802
        """Name used in messages ("Your Example code is ..."); none by default."""
        value = self._get("SITE_NAME")
        return str(value) if value else None

    def provider_alias_for(self, channel: str) -> str:
        """Alias that delivers ``channel``: ``CHANNEL_PROVIDERS`` or ``"default"``."""
        return self.CHANNEL_PROVIDERS.get(channel, "default")


app_settings = AppSettings()
