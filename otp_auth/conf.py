"""Typed, lazily read settings: the only place where defaults live.

Each value is read from the ``OTP_AUTH`` dict first, then from an ``OTP_AUTH_<NAME>``
setting, then falls back to the default below. Each value is read, checked and parsed
once, on first use (a login reads about thirty of them), and forgotten whenever Django
sends ``setting_changed`` (``override_settings``, the test ``settings`` fixture). Bad
values raise ``ConfigurationError`` (an ``ImproperlyConfigured``) naming the key, on
every read until fixed: only good values are kept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .constants import Channel, Purpose
from .exceptions import ConfigurationError

__all__ = [
    "CIRCUIT_DEFAULTS",
    "DEFAULTS",
    "RATE_LIMIT_DEFAULTS",
    "AppSettings",
    "Circuit",
    "Rate",
    "app_settings",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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
    "VERIFIED_SESSION_MAX_AGE": None,
    "VERIFIED_SESSION_IDLE_TIMEOUT": None,
    "PROVIDERS": {"default": {"BACKEND": CONSOLE_BACKEND, "OPTIONS": {}}},
    "CHANNEL_PROVIDERS": {},
    "CHANNELS": [Channel.SMS.value, Channel.VOICE.value, Channel.EMAIL.value],
    "REQUIRE_ENROLLMENT": False,
    "ENFORCE": True,
    "EXEMPT_URL_NAMES": [],
    "EXEMPT_PATHS": [],
    "ADMIN_LOGIN_REDIRECT": True,
    "ADMIN_USER_FACTORS": True,
    "DEFAULT_REGION": None,
    "ALLOWED_COUNTRIES": None,
    "LOGIN_REDIRECT_URL": None,
    "SITE_NAME": None,
    "SMS_ORIGIN": None,
    "SMS_APP_HASH": None,
    "HTTP_CONNECT_TIMEOUT": 5.0,
    "HTTP_READ_TIMEOUT": 15.0,
    "SEND_IN_BACKGROUND": False,
    "TASK_BACKEND": "default",
    "SEND_RETRIES": 2,
    "WEBHOOK_BASE_URL": None,
    "API_CREDENTIAL": "token",
    "CACHE": "default",
    "RATE_LIMITS": {},
    "LOCKOUT_THRESHOLD": 10,
    "LOCKOUT_DURATION": 900,
    "DISABLE_THRESHOLD": 100,
    "VERIFY_DELAY_AFTER": 5,
    "VERIFY_DELAY_MAX": 300,
    "TRUSTED_PROXIES": 0,
    "AUDIT_RETENTION_DAYS": 365,
    "CHALLENGE_RETENTION_DAYS": 30,
    "TOTP_ISSUER": None,
    "TOTP_DIGITS": 6,
    "TOTP_PERIOD": 30,
    "TOTP_ALGORITHM": "sha1",
    "TOTP_TOLERANCE": 1,
    "SEED_ENCRYPTION_KEYS": None,
    "RECOVERY_CODE_COUNT": 10,
    "TRUSTED_BROWSERS": False,
    "TRUSTED_BROWSER_DAYS": 30,
    "TRUSTED_BROWSER_STAFF": False,
    "TRUSTED_BROWSER_COOKIE_NAME": "otp_auth_trusted",
    "NOTIFY_BY_EMAIL": True,
    "PASSWORD_RESET": True,
    "PASSWORD_RESET_PHONE_TTL": 600,
    "PASSWORD_RESET_EMAIL_TTL": 3600,
    "PASSWORD_RESET_GRANT_TTL": 600,
    "PASSWORD_RESET_SECOND_FACTOR": True,
    "PASSWORD_DELAY_AFTER": 5,
    "PASSWORD_DELAY_MAX": 300,
    "EMAIL_CODES_FOR": [p.value for p in Purpose],
    "REFUSED_NUMBER_TYPES": ["PREMIUM_RATE", "SHARED_COST", "UNKNOWN"],
    "WEBAUTHN": False,
    "WEBAUTHN_RP_ID": None,
    "WEBAUTHN_RP_NAME": None,
    "WEBAUTHN_ORIGINS": None,
    "WEBAUTHN_USER_VERIFICATION": "preferred",
    "WEBAUTHN_ATTACHMENT": None,
    "WEBAUTHN_ATTESTATION": "none",
    "WEBAUTHN_TIMEOUT": 300,
    "PASSKEY_LOGIN": False,
    "CODE_LOGIN": False,
    "CODE_LOGIN_SINGLE_FACTOR": False,
}

#: Every rate limit, as ``"count/period"`` strings (several joined by commas); a site's
#: ``RATE_LIMITS`` is merged over these, and ``None`` turns one off.
RATE_LIMIT_DEFAULTS: dict[str, str | None] = {
    # Codes sent (first sends, resends and device switches), every channel.
    "send_per_user": "10/h,30/d",
    "send_per_destination": "5/h,10/d",
    "send_per_ip": "30/h,200/d",
    # SMS and voice only: per country calling code, and the site-wide budget. On by
    # default (a circuit breaker against SMS pumping); raise them to fit the site's
    # traffic. Turned off with DEBUG off, they are reported by otp_auth.W074.
    "send_per_calling_code": "100/h,500/d",
    "send_budget": "300/h,2000/d",
    # Enrollment codes (a new phone or address, which anyone with a password can type):
    # per client address, per account, and site-wide for SMS and voice, on top of the
    # send_* limits above.
    "enroll_send_per_ip": "5/h,20/d",
    "enroll_send_per_user": "5/d",
    "enroll_send_budget": "100/h",
    # Refused passwords from one client address, across all accounts (credential
    # stuffing). Per account, PASSWORD_DELAY_AFTER / PASSWORD_DELAY_MAX slow guesses down
    # instead: a count per account that refused everyone would lock owners out.
    "password_failures_per_ip": "100/h,500/d",
    # Refused codes from one client address, across all accounts.
    "verify_failures_per_ip": "50/h",
    # Password reset by code: requests per account and per client address, and refused
    # reset codes per account (they never count toward the lockout: see LOCKOUT_*).
    # Below send_per_destination, so that strangers asking for resets never use up the
    # codes a user's own sign-ins need.
    "reset_per_account": "3/h,6/d",
    "reset_per_ip": "20/h",
    "reset_failures_per_account": "10/h,20/d",
    # Sign-in by code (CODE_LOGIN): requests per account (or per text typed, when none
    # matched) and per client address, on top of the send_* limits.
    "code_login_per_account": "5/h,10/d",
    "code_login_per_ip": "20/h",
}

#: The circuit breaker of every provider alias, unless its ``"CIRCUIT"`` dict says otherwise:
#: 5 failures in 60 seconds (without a success in between) open the circuit; 30 seconds
#: later one probe is let through. ``"FAILURES": 0`` turns the breaker off for an alias.
CIRCUIT_DEFAULTS: dict[str, int] = {"FAILURES": 5, "WINDOW": 60, "COOL_OFF": 30}

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}

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


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be a number of seconds, got {value!r}.")
    if not 0 < value <= 300:
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be above 0 and at most 300 seconds.")
    return float(value)


class Rate(NamedTuple):
    """At most ``limit`` events per fixed window of ``seconds``."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        for unit, size in reversed(_PERIODS.items()):
            if self.seconds % size == 0:
                amount = self.seconds // size
                return f"{self.limit}/{'' if amount == 1 else amount}{unit}"
        raise AssertionError("unreachable: every period is a whole number of seconds")


class Circuit(NamedTuple):
    """Circuit-breaker settings of one provider alias (see ``CIRCUIT_DEFAULTS``)."""

    failures: int
    window: int
    cool_off: int

    @property
    def enabled(self) -> bool:
        return self.failures > 0


_CIRCUIT_LIMITS = {"FAILURES": (0, 1000), "WINDOW": (1, 86_400), "COOL_OFF": (1, 86_400)}


def _circuit(alias: str, value: Any) -> Circuit:
    where = f"OTP_AUTH['PROVIDERS']['{alias}']['CIRCUIT']"
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a dict such as {CIRCUIT_DEFAULTS}.")
    unknown = set(value) - set(CIRCUIT_DEFAULTS)
    if unknown:
        raise ConfigurationError(
            f"Unknown key(s) in {where}: {', '.join(sorted(map(str, unknown)))}; "
            f"use {', '.join(CIRCUIT_DEFAULTS)}."
        )
    merged = {**CIRCUIT_DEFAULTS, **value}
    for name, (minimum, maximum) in _CIRCUIT_LIMITS.items():
        item = merged[name]
        if isinstance(item, bool) or not isinstance(item, int) or not minimum <= item <= maximum:
            raise ConfigurationError(
                f"{where}['{name}'] must be an integer between {minimum} and {maximum}, "
                f"got {item!r}."
            )
    return Circuit(merged["FAILURES"], merged["WINDOW"], merged["COOL_OFF"])


def _rates(name: str, value: Any) -> tuple[Rate, ...]:
    """Parse ``"10/h,30/d"`` (or a list of such items); ``None`` or ``""`` is no limit."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError(f"OTP_AUTH['RATE_LIMITS']['{name}'] must be like '10/h,30/d'.")
    rates = []
    for item in items:
        count, _, period = str(item).strip().partition("/")
        amount, unit = period[:-1], period[-1:]
        if (
            not count.isdigit()
            or int(count) < 1
            or unit not in _PERIODS
            or (amount and (not amount.isdigit() or int(amount) < 1))
        ):
            raise ConfigurationError(
                f"OTP_AUTH['RATE_LIMITS']['{name}'] has {item!r}; use 'count/period' with "
                "a period in s, m, h or d, optionally with a number: '5/h', '20/15m'."
            )
        seconds = int(amount or 1) * _PERIODS[unit]
        if seconds > 31 * 86_400:
            raise ConfigurationError(
                f"OTP_AUTH['RATE_LIMITS']['{name}'] has {item!r}: windows are at most 31 days."
            )
        rates.append(Rate(int(count), seconds))
    return tuple(rates)


def _str_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be a list of strings.")
    if not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"OTP_AUTH['{name}'] must be a list of strings.")
    return list(value)


class AppSettings:
    """Accessors for ``OTP_AUTH`` settings; see the README's settings reference."""

    def __init__(self) -> None:
        self._memo: dict[str, Any] = {}

    def clear(self) -> None:
        """Forget every parsed value (on ``setting_changed``)."""
        self._memo.clear()

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
    def VERIFIED_SESSION_MAX_AGE(self) -> int | None:  # noqa: N802
        """Seconds after the second factor when a verified session ends (None: never)."""
        value = self._get("VERIFIED_SESSION_MAX_AGE")
        if value is None:
            return None
        return _int("VERIFIED_SESSION_MAX_AGE", value, minimum=60, maximum=365 * 86_400)

    @property
    def VERIFIED_SESSION_IDLE_TIMEOUT(self) -> int | None:  # noqa: N802
        """Seconds without a request after which a verified session ends (None: never)."""
        value = self._get("VERIFIED_SESSION_IDLE_TIMEOUT")
        if value is None:
            return None
        return _int("VERIFIED_SESSION_IDLE_TIMEOUT", value, minimum=120, maximum=365 * 86_400)

    @property
    def PROVIDERS(self) -> dict[str, dict[str, Any]]:  # noqa: N802
        """Provider aliases: ``{"alias": {"BACKEND": "dotted.path", "OPTIONS": {...}}}``,
        each with an optional ``"CIRCUIT"`` dict (returned parsed as a ``Circuit``)."""
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
            unknown = set(conf) - {"BACKEND", "OPTIONS", "CIRCUIT"}
            if unknown:
                raise ConfigurationError(
                    f"Unknown key(s) in OTP_AUTH['PROVIDERS']['{alias}']: "
                    f"{', '.join(sorted(map(str, unknown)))}; use BACKEND, OPTIONS and CIRCUIT."
                )
            providers[alias] = {
                "BACKEND": conf["BACKEND"],
                "OPTIONS": dict(options),
                "CIRCUIT": _circuit(alias, conf.get("CIRCUIT")),
            }
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
    def REQUIRE_ENROLLMENT(self) -> bool | str | Callable[[Any], bool]:  # noqa: N802
        """Who must enroll a factor before using the site: ``False`` (nobody), ``True``
        (every user), ``"staff"`` (staff and superusers) or a callable ``f(user) -> bool``,
        given as the callable or its dotted path (returned imported)."""
        value = self._get("REQUIRE_ENROLLMENT")
        if isinstance(value, bool) or value == "staff":
            return value  # type: ignore[no-any-return]
        if isinstance(value, str) and "." in value and " " not in value:
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ConfigurationError(
                    f"OTP_AUTH['REQUIRE_ENROLLMENT'] names {value!r}, which cannot be "
                    f"imported: {exc}"
                ) from exc
        if callable(value):
            return value  # type: ignore[no-any-return]
        raise ConfigurationError(
            "OTP_AUTH['REQUIRE_ENROLLMENT'] must be True, False, 'staff', or a callable "
            f"(or its dotted path) taking the user and returning a bool; got {value!r}."
        )

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
    def ADMIN_USER_FACTORS(self) -> bool:  # noqa: N802
        """True: the registered user admin shows each user's second factors, and its
        password change needs a fresh second factor (``OTPUserAdminMixin``)."""
        return _bool("ADMIN_USER_FACTORS", self._get("ADMIN_USER_FACTORS"))

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

    @property
    def SMS_ORIGIN(self) -> str | None:  # noqa: N802
        """Host name for origin-bound codes: each SMS ends with ``@example.com #123456``,
        which browsers (WebOTP) and phone keyboards use to offer the code only on that
        site. ``None`` (the default) adds no such line."""
        value = self._get("SMS_ORIGIN")
        if value is None:
            return None
        host = value.lower() if isinstance(value, str) else ""
        labels = host.split(".")
        if not (
            host.isascii()
            and len(labels) >= 2
            and all(label and label.replace("-", "").isalnum() for label in labels)
        ):
            raise ConfigurationError(
                "OTP_AUTH['SMS_ORIGIN'] must be a host name such as 'example.com', without "
                f"scheme, port or path, got {value!r}."
            )
        return host

    @property
    def SMS_APP_HASH(self) -> str | None:  # noqa: N802
        """The 11-character hash of an Android app that reads its codes with the SMS
        Retriever API; put on its own line before the origin-bound line."""
        value = self._get("SMS_APP_HASH")
        if value is None:
            return None
        allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        if not isinstance(value, str) or len(value) != 11 or not set(value) <= allowed:
            raise ConfigurationError(
                "OTP_AUTH['SMS_APP_HASH'] must be the 11-character app hash Android's SMS "
                f"Retriever documentation describes, got {value!r}."
            )
        return value

    @property
    def HTTP_CONNECT_TIMEOUT(self) -> float:  # noqa: N802
        """Seconds to wait for a provider's TCP/TLS connection (5). A provider's
        ``OPTIONS["connect_timeout"]`` overrides it. Failing here means nothing was sent."""
        return _seconds("HTTP_CONNECT_TIMEOUT", self._get("HTTP_CONNECT_TIMEOUT"))

    @property
    def HTTP_READ_TIMEOUT(self) -> float:  # noqa: N802
        """Seconds to wait for a provider's answer once the request is sent (15); per
        provider ``OPTIONS["read_timeout"]``. After it, the send's outcome is unknown."""
        return _seconds("HTTP_READ_TIMEOUT", self._get("HTTP_READ_TIMEOUT"))

    @property
    def SEND_IN_BACKGROUND(self) -> bool:  # noqa: N802
        """Send codes from a task worker (Django's Tasks framework) instead of inside the
        request (False). The request issues the challenge and enqueues its send; the
        worker calls the vendors. Needs ``django.tasks`` (Django 6) or ``django-tasks``."""
        return _bool("SEND_IN_BACKGROUND", self._get("SEND_IN_BACKGROUND"))

    @property
    def TASK_BACKEND(self) -> str:  # noqa: N802
        """Alias in ``TASKS`` that queued sends go to (``"default"``)."""
        value = self._get("TASK_BACKEND")
        if not isinstance(value, str) or not value:
            raise ConfigurationError("OTP_AUTH['TASK_BACKEND'] must be an alias from TASKS.")
        return value

    @property
    def SEND_RETRIES(self) -> int:  # noqa: N802
        """How many more times a queued send is tried after every vendor refused it
        without sending (unavailable, circuit open) (2). A send whose outcome is unknown
        (read timeout) is never tried again."""
        return _int("SEND_RETRIES", self._get("SEND_RETRIES"), minimum=0, maximum=10)

    @property
    def WEBHOOK_BASE_URL(self) -> str | None:  # noqa: N802
        """Scheme and host at which providers reach this site, e.g.
        ``"https://example.com"``; paths come from ``reverse()``. ``None`` (the default)
        asks providers for no delivery callbacks. Never derived from the request's
        ``Host`` header, which a client controls."""
        value = self._get("WEBHOOK_BASE_URL")
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ConfigurationError(
                "OTP_AUTH['WEBHOOK_BASE_URL'] must be an http(s) URL such as 'https://example.com'."
            )
        scheme, _, rest = value.partition("://")
        host, _, path = rest.partition("/")
        if not host or path.strip("/") or "?" in value or "#" in value:
            raise ConfigurationError(
                "OTP_AUTH['WEBHOOK_BASE_URL'] must be a scheme and host only, without a "
                "path, query or fragment; URL paths come from the URLconf."
            )
        return f"{scheme}://{host}"

    @property
    def API_CREDENTIAL(self) -> str:  # noqa: N802
        """What the API's verify step hands out: ``"token"`` (DRF's ``Token``, the
        default), ``"session"`` (a Django session login) or the dotted path of an issuer
        function ``issue(request, user, challenge) -> dict`` (SimpleJWT, Knox...)."""
        value = self._get("API_CREDENTIAL")
        dotted = isinstance(value, str) and "." in value and value.isprintable()
        if value not in ("token", "session") and not (dotted and " " not in value):
            raise ConfigurationError(
                "OTP_AUTH['API_CREDENTIAL'] must be 'token', 'session' or the dotted path "
                f"of an issuer function, got {value!r}."
            )
        return str(value)

    @property
    def CACHE(self) -> str:  # noqa: N802
        """Alias in ``CACHES`` that holds the rate-limit counters (``"default"``). Use a
        cache shared by every process (Redis, Memcached): a per-process cache multiplies
        every limit by the number of processes."""
        value = self._get("CACHE")
        if not isinstance(value, str) or not value:
            raise ConfigurationError("OTP_AUTH['CACHE'] must be a cache alias from CACHES.")
        return value

    @property
    def RATE_LIMITS(self) -> dict[str, tuple[Rate, ...]]:  # noqa: N802
        """Every limit parsed: ``RATE_LIMIT_DEFAULTS`` with the site's ``RATE_LIMITS`` on
        top. A key set to ``None`` is off; unknown keys are refused."""
        value = self._get("RATE_LIMITS")
        if not isinstance(value, Mapping):
            raise ConfigurationError("OTP_AUTH['RATE_LIMITS'] must be a dict.")
        unknown = set(value) - set(RATE_LIMIT_DEFAULTS)
        if unknown:
            raise ConfigurationError(
                f"Unknown key(s) in OTP_AUTH['RATE_LIMITS']: {', '.join(sorted(unknown))}; "
                f"use {', '.join(RATE_LIMIT_DEFAULTS)}."
            )
        merged = {**RATE_LIMIT_DEFAULTS, **value}
        return {name: _rates(name, merged[name]) for name in RATE_LIMIT_DEFAULTS}

    @property
    def LOCKOUT_THRESHOLD(self) -> int:  # noqa: N802
        """Consecutive refused codes (any challenge, channel or session of one user) that
        lock the user's second factor for ``LOCKOUT_DURATION`` (10); 0 turns it off."""
        return _int("LOCKOUT_THRESHOLD", self._get("LOCKOUT_THRESHOLD"), minimum=0, maximum=100)

    @property
    def LOCKOUT_DURATION(self) -> int:  # noqa: N802
        """Seconds of the first temporary lock (900); each further lock without a success
        in between lasts twice as long, up to a day."""
        value = self._get("LOCKOUT_DURATION")
        return _int("LOCKOUT_DURATION", value, minimum=1, maximum=86_400)

    @property
    def DISABLE_THRESHOLD(self) -> int:  # noqa: N802
        """Consecutive refused codes after which the user's codes are disabled until an
        administrator unlocks them (100, the most NIST SP 800-63B-4 allows)."""
        return _int("DISABLE_THRESHOLD", self._get("DISABLE_THRESHOLD"), minimum=1, maximum=100)

    @property
    def VERIFY_DELAY_AFTER(self) -> int:  # noqa: N802
        """Refused codes in a row that cost no wait (5). After more, the next code is
        only looked at 1, 2, 4, 8... seconds after the last refusal."""
        value = self._get("VERIFY_DELAY_AFTER")
        return _int("VERIFY_DELAY_AFTER", value, minimum=0, maximum=100)

    @property
    def VERIFY_DELAY_MAX(self) -> int:  # noqa: N802
        """Longest wait, in seconds, between two refused codes (300); 0 turns delays off."""
        return _int("VERIFY_DELAY_MAX", self._get("VERIFY_DELAY_MAX"), minimum=0, maximum=3600)

    @property
    def TRUSTED_PROXIES(self) -> int | tuple[IPNetwork, ...]:  # noqa: N802
        """How to find the client address. ``0`` (default): ``REMOTE_ADDR`` only, and
        ``X-Forwarded-For`` is ignored. A number ``n``: that many proxies you run append
        to ``X-Forwarded-For``, and the ``n``-th address from its right is the client's.
        A list of networks (``["10.0.0.0/8"]``): addresses in them are your proxies, and
        the client is the first address from the right outside them."""
        value = self._get("TRUSTED_PROXIES")
        if isinstance(value, int) and not isinstance(value, bool):
            return _int("TRUSTED_PROXIES", value, minimum=0, maximum=10)
        try:
            return tuple(
                ipaddress.ip_network(item, strict=False)
                for item in _str_list("TRUSTED_PROXIES", value)
            )
        except (ConfigurationError, ValueError) as exc:
            raise ConfigurationError(
                "OTP_AUTH['TRUSTED_PROXIES'] must be a number of proxies (0-10) or a list "
                f"of networks such as ['10.0.0.0/8']: {exc}"
            ) from exc

    @property
    def AUDIT_RETENTION_DAYS(self) -> int:  # noqa: N802
        """Days ``otp_auth_cleanup`` keeps audit events (365)."""
        value = self._get("AUDIT_RETENTION_DAYS")
        return _int("AUDIT_RETENTION_DAYS", value, minimum=1, maximum=36_500)

    @property
    def CHALLENGE_RETENTION_DAYS(self) -> int:  # noqa: N802
        """Days ``otp_auth_cleanup`` keeps challenges and their delivery attempts (30)."""
        value = self._get("CHALLENGE_RETENTION_DAYS")
        return _int("CHALLENGE_RETENTION_DAYS", value, minimum=1, maximum=36_500)

    @property
    def TOTP_ISSUER(self) -> str | None:  # noqa: N802
        """Name authenticator apps show next to the account; ``SITE_NAME``, then the
        request's host, when unset."""
        value = self._get("TOTP_ISSUER")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError("OTP_AUTH['TOTP_ISSUER'] must be a non-empty string.")
        return value.strip() if value else None

    @property
    def TOTP_DIGITS(self) -> int:  # noqa: N802
        """Digits of new authenticator codes: 6 (default) or 8, which some apps lack."""
        value = self._get("TOTP_DIGITS")
        if value not in (6, 8) or isinstance(value, bool):
            raise ConfigurationError(f"OTP_AUTH['TOTP_DIGITS'] must be 6 or 8, got {value!r}.")
        return int(value)

    @property
    def TOTP_PERIOD(self) -> int:  # noqa: N802
        """Seconds per authenticator code for new devices (30, as every app assumes)."""
        return _int("TOTP_PERIOD", self._get("TOTP_PERIOD"), minimum=15, maximum=120)

    @property
    def TOTP_ALGORITHM(self) -> str:  # noqa: N802
        """HMAC hash for new devices: ``"sha1"`` (default; the only one every app supports),
        ``"sha256"`` or ``"sha512"``."""
        value = self._get("TOTP_ALGORITHM")
        if value not in ("sha1", "sha256", "sha512"):
            raise ConfigurationError(
                f"OTP_AUTH['TOTP_ALGORITHM'] must be 'sha1', 'sha256' or 'sha512', got {value!r}."
            )
        return str(value)

    @property
    def TOTP_TOLERANCE(self) -> int:  # noqa: N802
        """Time steps accepted either side of the current one for clock drift (1)."""
        return _int("TOTP_TOLERANCE", self._get("TOTP_TOLERANCE"), minimum=0, maximum=2)

    @property
    def SEED_ENCRYPTION_KEYS(self) -> list[bytes] | None:  # noqa: N802
        """Fernet keys for authenticator seeds, newest first; ``None`` derives them from
        ``SECRET_KEY`` (see ``otp_auth.encryption``)."""
        value = self._get("SEED_ENCRYPTION_KEYS")
        if value is None:
            return None
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple) or not value:
            raise ConfigurationError(
                "OTP_AUTH['SEED_ENCRYPTION_KEYS'] must be a non-empty list of Fernet keys."
            )
        from cryptography.fernet import Fernet

        keys = []
        for index, key in enumerate(value):
            raw = key.encode("ascii") if isinstance(key, str) else key
            try:
                Fernet(raw)
            except (TypeError, ValueError, UnicodeEncodeError) as exc:
                raise ConfigurationError(
                    f"OTP_AUTH['SEED_ENCRYPTION_KEYS'][{index}] is not a Fernet key "
                    "(32 url-safe base64-encoded bytes, from Fernet.generate_key())."
                ) from exc
            keys.append(raw)
        return keys

    @property
    def RECOVERY_CODE_COUNT(self) -> int:  # noqa: N802
        """Recovery codes per generated set (10)."""
        return _int("RECOVERY_CODE_COUNT", self._get("RECOVERY_CODE_COUNT"), minimum=5, maximum=20)

    @property
    def TRUSTED_BROWSERS(self) -> bool:  # noqa: N802
        """True: offer "remember this browser" at the code step (off by default)."""
        return _bool("TRUSTED_BROWSERS", self._get("TRUSTED_BROWSERS"))

    @property
    def TRUSTED_BROWSER_DAYS(self) -> int:  # noqa: N802
        """Days a remembered browser skips the second factor (30)."""
        return _int(
            "TRUSTED_BROWSER_DAYS", self._get("TRUSTED_BROWSER_DAYS"), minimum=1, maximum=365
        )

    @property
    def TRUSTED_BROWSER_STAFF(self) -> bool:  # noqa: N802
        """False (default): staff and superusers always give a second factor."""
        return _bool("TRUSTED_BROWSER_STAFF", self._get("TRUSTED_BROWSER_STAFF"))

    @property
    def TRUSTED_BROWSER_COOKIE_NAME(self) -> str:  # noqa: N802
        """Cookie of a remembered browser; ``"__Host-..."`` names suit HTTPS-only sites."""
        value = self._get("TRUSTED_BROWSER_COOKIE_NAME")
        if not isinstance(value, str) or not value or not value.isascii() or " " in value:
            raise ConfigurationError(
                "OTP_AUTH['TRUSTED_BROWSER_COOKIE_NAME'] must be a cookie name."
            )
        return value

    @property
    def NOTIFY_BY_EMAIL(self) -> bool:  # noqa: N802
        """True: email the user when a factor is added or removed, recovery codes are
        regenerated or used, or the password is changed here."""
        return _bool("NOTIFY_BY_EMAIL", self._get("NOTIFY_BY_EMAIL"))

    @property
    def PASSWORD_RESET(self) -> bool:  # noqa: N802
        """True (default): the password-reset-by-code pages and API endpoints answer."""
        return _bool("PASSWORD_RESET", self._get("PASSWORD_RESET"))

    @property
    def PASSWORD_RESET_PHONE_TTL(self) -> int:  # noqa: N802
        """Seconds a reset code sent by SMS or voice stays valid (600). Above 600 is
        refused by the system check ``otp_auth.E040`` (NIST SP 800-63B-4 §4.2.1.2)."""
        value = self._get("PASSWORD_RESET_PHONE_TTL")
        return _int("PASSWORD_RESET_PHONE_TTL", value, minimum=30, maximum=30 * 86_400)

    @property
    def PASSWORD_RESET_EMAIL_TTL(self) -> int:  # noqa: N802
        """Seconds a reset code sent by email stays valid (3600). Above a day is refused
        by the system check ``otp_auth.E040``."""
        value = self._get("PASSWORD_RESET_EMAIL_TTL")
        return _int("PASSWORD_RESET_EMAIL_TTL", value, minimum=30, maximum=30 * 86_400)

    @property
    def PASSWORD_RESET_GRANT_TTL(self) -> int:  # noqa: N802
        """Seconds between an accepted reset code and the new password (600)."""
        value = self._get("PASSWORD_RESET_GRANT_TTL")
        return _int("PASSWORD_RESET_GRANT_TTL", value, minimum=60, maximum=3600)

    @property
    def PASSWORD_RESET_SECOND_FACTOR(self) -> bool:  # noqa: N802
        """True (default): besides the reset code, a second factor independent of the
        device that got it (an authenticator app, a recovery code or a code sent to
        another device) is needed to set the password. False: the reset code alone is
        enough; the second factor is still asked at the next login."""
        return _bool("PASSWORD_RESET_SECOND_FACTOR", self._get("PASSWORD_RESET_SECOND_FACTOR"))

    @property
    def PASSWORD_DELAY_AFTER(self) -> int:  # noqa: N802
        """Refused passwords of one account (any client) that cost no wait (5). After
        more, only one password per 1, 2, 4... seconds is looked at, and any other, even
        the right one, gets "try again later". A success starts the count again."""
        value = self._get("PASSWORD_DELAY_AFTER")
        return _int("PASSWORD_DELAY_AFTER", value, minimum=1, maximum=1000)

    @property
    def PASSWORD_DELAY_MAX(self) -> int:  # noqa: N802
        """Longest wait, in seconds, between two looked-at passwords of one account (300);
        0 turns the per-account delay off."""
        value = self._get("PASSWORD_DELAY_MAX")
        return _int("PASSWORD_DELAY_MAX", value, minimum=0, maximum=3600)

    @property
    def EMAIL_CODES_FOR(self) -> frozenset[str]:  # noqa: N802
        """Purposes a code may be sent by email for (every purpose by default).
        ``["password_reset"]`` keeps email, which a mailbox compromise exposes, out of
        sign-in, step-up and enrollment: email devices then serve account recovery only."""
        value = _str_list("EMAIL_CODES_FOR", self._get("EMAIL_CODES_FOR"))
        bad = [v for v in value if v not in Purpose.values]
        if bad:
            raise ConfigurationError(
                f"OTP_AUTH['EMAIL_CODES_FOR'] has unknown purpose(s) {bad}; use {Purpose.values}."
            )
        return frozenset(value)

    @property
    def REFUSED_NUMBER_TYPES(self) -> frozenset[str]:  # noqa: N802
        """``phonenumbers`` number types never sent an SMS or a call, at enrollment and at
        every send (``PREMIUM_RATE``, ``SHARED_COST``, ``UNKNOWN``): the ranges that SMS
        pumping profits from. ``[]`` allows every valid number."""
        import phonenumbers

        value = _str_list("REFUSED_NUMBER_TYPES", self._get("REFUSED_NUMBER_TYPES"))
        names = {n for n in dir(phonenumbers.PhoneNumberType) if n.isupper()}
        bad = [v for v in value if v not in names]
        if bad:
            raise ConfigurationError(
                f"OTP_AUTH['REFUSED_NUMBER_TYPES'] has unknown type(s) {bad}; use names of "
                "phonenumbers.PhoneNumberType such as 'PREMIUM_RATE'."
            )
        return frozenset(value)

    @property
    def WEBAUTHN(self) -> bool:  # noqa: N802
        """True: users may register security keys and passkeys (WebAuthn, through the
        ``webauthn`` extra) and use them at the second step (off by default)."""
        return _bool("WEBAUTHN", self._get("WEBAUTHN"))

    @property
    def WEBAUTHN_RP_ID(self) -> str | None:  # noqa: N802
        """The relying-party id credentials are bound to: the site's registrable domain
        (``"example.com"``). ``None``: the request's host (fine for one host; set it in
        production, since changing it later makes every credential unusable)."""
        value = self._get("WEBAUTHN_RP_ID")
        if value is None:
            return None
        if not isinstance(value, str) or not value or "/" in value or ":" in value:
            raise ConfigurationError(
                "OTP_AUTH['WEBAUTHN_RP_ID'] must be a domain name such as 'example.com'."
            )
        return value.lower()

    @property
    def WEBAUTHN_RP_NAME(self) -> str | None:  # noqa: N802
        """The site name authenticators show; ``SITE_NAME``, then the RP id, when unset."""
        value = self._get("WEBAUTHN_RP_NAME")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError("OTP_AUTH['WEBAUTHN_RP_NAME'] must be a non-empty string.")
        return value.strip() if value else None

    @property
    def WEBAUTHN_ORIGINS(self) -> list[str] | None:  # noqa: N802
        """Origins a ceremony may come from (``["https://example.com"]``). ``None``: the
        request's own scheme and host."""
        value = self._get("WEBAUTHN_ORIGINS")
        if value is None:
            return None
        origins = _str_list("WEBAUTHN_ORIGINS", value)
        bad = [o for o in origins if not o.startswith(("https://", "http://")) or o.endswith("/")]
        if bad or not origins:
            raise ConfigurationError(
                "OTP_AUTH['WEBAUTHN_ORIGINS'] must list origins like 'https://example.com' "
                f"(scheme and host, no path); got {bad or origins!r}."
            )
        return origins

    @property
    def WEBAUTHN_USER_VERIFICATION(self) -> str:  # noqa: N802
        """``"preferred"`` (default), ``"required"`` or ``"discouraged"``: whether the
        authenticator must check a PIN or biometric when used as a second factor.
        Passkey sign-in always requires it."""
        value = self._get("WEBAUTHN_USER_VERIFICATION")
        if value not in ("preferred", "required", "discouraged"):
            raise ConfigurationError(
                "OTP_AUTH['WEBAUTHN_USER_VERIFICATION'] must be 'preferred', 'required' or "
                f"'discouraged', got {value!r}."
            )
        return str(value)

    @property
    def WEBAUTHN_ATTACHMENT(self) -> str | None:  # noqa: N802
        """``None`` (any authenticator), ``"platform"`` (built into the device) or
        ``"cross-platform"`` (a roaming key: USB, NFC, BLE, a phone)."""
        value = self._get("WEBAUTHN_ATTACHMENT")
        if value not in (None, "platform", "cross-platform"):
            raise ConfigurationError(
                "OTP_AUTH['WEBAUTHN_ATTACHMENT'] must be None, 'platform' or "
                f"'cross-platform', got {value!r}."
            )
        return value  # type: ignore[no-any-return]

    @property
    def WEBAUTHN_ATTESTATION(self) -> str:  # noqa: N802
        """Attestation asked at registration: ``"none"`` (default: no vendor statement,
        best for privacy), ``"indirect"`` or ``"direct"`` (recorded, not enforced)."""
        value = self._get("WEBAUTHN_ATTESTATION")
        if value not in ("none", "indirect", "direct"):
            raise ConfigurationError(
                "OTP_AUTH['WEBAUTHN_ATTESTATION'] must be 'none', 'indirect' or 'direct', "
                f"got {value!r}."
            )
        return str(value)

    @property
    def WEBAUTHN_TIMEOUT(self) -> int:  # noqa: N802
        """Seconds a registration or sign-in ceremony (its challenge) stays usable (300)."""
        return _int("WEBAUTHN_TIMEOUT", self._get("WEBAUTHN_TIMEOUT"), minimum=30, maximum=900)

    @property
    def PASSKEY_LOGIN(self) -> bool:  # noqa: N802
        """True: a passkey (a discoverable credential, with user verification) signs the
        user in without a password, counting as both factors; the login page offers it
        in the browser's autofill. Needs ``WEBAUTHN``."""
        return _bool("PASSKEY_LOGIN", self._get("PASSKEY_LOGIN"))

    @property
    def CODE_LOGIN(self) -> bool:  # noqa: N802
        """True: "email me a code" sign-in: a username, email or phone number gets a code
        on a confirmed device instead of a password (off by default)."""
        return _bool("CODE_LOGIN", self._get("CODE_LOGIN"))

    @property
    def CODE_LOGIN_SINGLE_FACTOR(self) -> bool:  # noqa: N802
        """False (default): a code sign-in counts as one factor, and a second, independent
        one (an app, a passkey, a code to another device) is still asked. True: accounts
        without a usable password are signed in by the code alone."""
        return _bool("CODE_LOGIN_SINGLE_FACTOR", self._get("CODE_LOGIN_SINGLE_FACTOR"))

    def code_ttl(self, purpose: str, channel: str) -> int:
        """Seconds a code sent for ``purpose`` over ``channel`` stays valid: ``CODE_TTL``,
        or for a password reset ``PASSWORD_RESET_PHONE_TTL`` / ``PASSWORD_RESET_EMAIL_TTL``."""
        if purpose == Purpose.PASSWORD_RESET:
            if channel == Channel.EMAIL:
                return self.PASSWORD_RESET_EMAIL_TTL
            return self.PASSWORD_RESET_PHONE_TTL
        return self.CODE_TTL

    def circuit(self, alias: str) -> Circuit:
        """Circuit-breaker settings of provider ``alias`` (the defaults for an unknown one)."""
        conf = self.PROVIDERS.get(alias)
        return conf["CIRCUIT"] if conf else _circuit(alias, None)

    def provider_alias_for(self, channel: str) -> str:
        """Alias that delivers ``channel``: ``CHANNEL_PROVIDERS`` or ``"default"``."""
        return self.CHANNEL_PROVIDERS.get(channel, "default")


def _memoized(name: str, prop: property) -> property:
    parse = prop.fget
    assert parse is not None

    def get(self: AppSettings) -> Any:
        try:
            return self._memo[name]
        except KeyError:
            value = self._memo[name] = parse(self)
            return value

    get.__doc__ = parse.__doc__
    return property(get)


for _name, _attribute in list(vars(AppSettings).items()):
    if isinstance(_attribute, property):
        setattr(AppSettings, _name, _memoized(_name, _attribute))

app_settings = AppSettings()


def _on_setting_changed(**kwargs: Any) -> None:
    # Any setting: some values fall back on Django's own (LOGIN_REDIRECT_URL, CACHES).
    app_settings.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="otp_auth.conf.setting_changed")
