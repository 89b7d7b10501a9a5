"""System checks ``otp_auth.E0NN`` (errors) and ``otp_auth.W0NN`` (warnings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings
from .constants import Channel, Purpose

__all__ = ["check_messages", "check_settings"]

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
        app_settings.HTTP_CONNECT_TIMEOUT  # noqa: B018
        app_settings.HTTP_READ_TIMEOUT  # noqa: B018
        webhook_base = app_settings.WEBHOOK_BASE_URL
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]

    messages += _check_providers(providers, channel_map, channels)
    messages += _check_middleware()
    if webhook_base and webhook_base.startswith("http://") and not settings.DEBUG:
        messages.append(
            Warning(
                f"OTP_AUTH['WEBHOOK_BASE_URL'] is {webhook_base!r}: providers would post "
                "delivery callbacks over plain HTTP.",
                hint="Use an https:// URL in production.",
                id="otp_auth.W003",
            )
        )
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
        sender_id = getattr(provider, "sender_id", None)
        limit = getattr(provider, "max_sender_id_length", None)
        if isinstance(sender_id, str) and isinstance(limit, int) and len(sender_id) > limit:
            messages.append(
                Error(
                    f"Provider {alias!r} has a sender id of {len(sender_id)} characters; "
                    f"{type(provider).__module__} accepts at most {limit}.",
                    hint="Shorten OPTIONS['sender_id'] (and register it with the vendor).",
                    id="otp_auth.E008",
                )
            )
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


# Views that hand out an API token for a password alone. Matched by class path (and
# subclasses), so nothing here imports rest_framework.
PASSWORD_TOKEN_VIEWS = frozenset(
    {
        "rest_framework.authtoken.views.ObtainAuthToken",
        "rest_framework_simplejwt.views.TokenObtainPairView",
        "rest_framework_simplejwt.views.TokenObtainSlidingView",
        "knox.views.LoginView",
    }
)


def _routed_views() -> list[tuple[str, Any]]:
    """``(route, view callback)`` for every pattern of the root URLconf."""
    from django.urls import URLResolver, get_resolver

    found: list[tuple[str, Any]] = []

    def walk(patterns: Any, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            else:
                found.append((route, entry.callback))

    walk(get_resolver().url_patterns, "/")
    return found


def _class_paths(callback: Any) -> set[str]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if not isinstance(view_class, type):
        return set()
    return {f"{c.__module__}.{c.__qualname__}" for c in view_class.__mro__}


@register(Tags.security, Tags.urls)
def check_api(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``otp_auth.W010``: a password-only token view is routed while the second factor
    is enforced. ``otp_auth.E010``: the API is routed with an unusable ``API_CREDENTIAL``."""
    try:
        routes = _routed_views()
    except (ImportError, ImproperlyConfigured):
        return []  # A broken URLconf is reported by Django's own URL checks.
    messages: list[CheckMessage] = []
    password_token_routes = [r for r, cb in routes if _class_paths(cb) & PASSWORD_TOKEN_VIEWS]
    if password_token_routes and app_settings.ENFORCE:
        messages.append(
            Warning(
                "A view that issues API tokens for a password alone is routed at "
                f"{', '.join(password_token_routes)}: with it, a stolen password is "
                "enough to get a token, and DRF's view even returns a token that was "
                "issued after the second factor.",
                hint="Remove the route and log API clients in with otp_auth.api.urls; "
                "protect views with otp_auth.api.permissions.IsOTPVerified.",
                id="otp_auth.W010",
            )
        )
    if any(getattr(cb, "__module__", "").startswith("otp_auth.api.") for _, cb in routes):
        problem = _api_credential_problem()
        if problem:
            messages.append(
                Error(
                    problem,
                    hint="See OTP_AUTH['API_CREDENTIAL'] in the README.",
                    id="otp_auth.E010",
                )
            )
    return messages


def _api_credential_problem() -> str | None:
    from django.utils.module_loading import import_string

    try:
        credential = app_settings.API_CREDENTIAL
    except ImproperlyConfigured as exc:
        return str(exc)
    if credential == "token":
        if "rest_framework.authtoken" not in settings.INSTALLED_APPS:
            return (
                "OTP_AUTH['API_CREDENTIAL'] is 'token' but 'rest_framework.authtoken' is "
                "not in INSTALLED_APPS."
            )
    elif credential != "session":
        try:
            issuer = import_string(credential)
        except ImportError as exc:
            return f"OTP_AUTH['API_CREDENTIAL'] = {credential!r} cannot be imported: {exc}"
        if not callable(issuer):
            return f"OTP_AUTH['API_CREDENTIAL'] = {credential!r} is not callable."
    return None


# Cache backends whose incr() reads and writes back: parallel requests can lose counts.
NON_ATOMIC_CACHES = (
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)


@register(Tags.security, Tags.caches)
def check_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``otp_auth.E020``: the rate-limit cache is missing or counts nothing.
    ``otp_auth.W020``: it cannot count atomically. ``otp_auth.W021``: the temporary
    lockout can never start before the codes are disabled."""
    try:
        alias = app_settings.CACHE
        app_settings.RATE_LIMITS  # noqa: B018 - validates the value
        app_settings.TRUSTED_PROXIES  # noqa: B018
        app_settings.LOCKOUT_DURATION  # noqa: B018
        app_settings.VERIFY_DELAY_AFTER  # noqa: B018
        app_settings.VERIFY_DELAY_MAX  # noqa: B018
        app_settings.AUDIT_RETENTION_DAYS  # noqa: B018
        app_settings.CHALLENGE_RETENTION_DAYS  # noqa: B018
        lock_at = app_settings.LOCKOUT_THRESHOLD
        disable_at = app_settings.DISABLE_THRESHOLD
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    messages: list[CheckMessage] = []
    backend = str(getattr(settings, "CACHES", {}).get(alias, {}).get("BACKEND", ""))
    if not backend or backend.endswith(".DummyCache"):
        messages.append(
            Error(
                f"OTP_AUTH['CACHE'] is {alias!r}, which "
                + ("is not in CACHES." if not backend else "is a DummyCache: nothing is counted.")
                + " Rate limits on sends and code checks cannot work.",
                hint="Point OTP_AUTH['CACHE'] at a Redis or Memcached cache.",
                id="otp_auth.E020",
            )
        )
    elif backend in NON_ATOMIC_CACHES:
        messages.append(
            Warning(
                f"The rate-limit cache {alias!r} uses {backend}, which cannot increment "
                "atomically: parallel requests can slip past a limit.",
                hint="Point OTP_AUTH['CACHE'] at a Redis or Memcached cache.",
                id="otp_auth.W020",
            )
        )
    if lock_at and lock_at >= disable_at:
        messages.append(
            Warning(
                f"OTP_AUTH['LOCKOUT_THRESHOLD'] ({lock_at}) is not below DISABLE_THRESHOLD "
                f"({disable_at}): users go straight to a lock only staff can lift.",
                hint="Keep LOCKOUT_THRESHOLD well below DISABLE_THRESHOLD (10 and 100).",
                id="otp_auth.W021",
            )
        )
    return messages


@register(Tags.security)
def check_factors(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Authenticator, recovery-code, remembered-browser and enrollment settings.

    ``otp_auth.W030``: seeds are encrypted with keys derived from ``SECRET_KEY`` while
    ``SECRET_KEY_FALLBACKS`` is set, i.e. during a key rotation: the old key must stay
    until ``manage.py otp_auth_rotate_keys`` has run, or the apps stop working.
    """
    try:
        for name in (
            "TOTP_ISSUER",
            "TOTP_DIGITS",
            "TOTP_PERIOD",
            "TOTP_ALGORITHM",
            "TOTP_TOLERANCE",
            "RECOVERY_CODE_COUNT",
            "TRUSTED_BROWSERS",
            "TRUSTED_BROWSER_DAYS",
            "TRUSTED_BROWSER_STAFF",
            "TRUSTED_BROWSER_COOKIE_NAME",
            "NOTIFY_BY_EMAIL",
            "REQUIRE_ENROLLMENT",
        ):
            getattr(app_settings, name)
        keys = app_settings.SEED_ENCRYPTION_KEYS
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    messages: list[CheckMessage] = []
    if keys is None and getattr(settings, "SECRET_KEY_FALLBACKS", None):
        messages.append(
            Warning(
                "Authenticator seeds are encrypted with keys derived from SECRET_KEY, and "
                "SECRET_KEY_FALLBACKS is set: seeds written under an old key can be read "
                "only while that key stays in the fallbacks.",
                hint="Run `manage.py otp_auth_rotate_keys` before removing old keys, or "
                "set OTP_AUTH['SEED_ENCRYPTION_KEYS'] to keys kept apart from SECRET_KEY.",
                id="otp_auth.W030",
            )
        )
    return messages


@register(Tags.database)
def check_key_rotation(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Rows that need an older key (run with ``check --database``, and by ``migrate``).

    ``otp_auth.W031``: seeds or recovery codes need a key kept only as a fallback (or
    may, for rows written before key ids were recorded): removing it now would make them
    unusable. ``otp_auth.W032``: some already need a key no longer configured. One
    grouped query per table, on the indexed key ids stored with each row. Sent codes,
    which live minutes, are counted by ``otp_auth_rotate_keys`` only: counting them here
    would scan the challenge history.
    """
    from django.db import DatabaseError, router, transaction

    from .models import RecoveryCodeSet, TOTPDevice
    from .services import keys

    try:
        app_settings.SEED_ENCRYPTION_KEYS  # noqa: B018 - validates the value
    except ImproperlyConfigured:
        return []  # reported as otp_auth.E007 by check_factors
    work = [
        (
            "authenticator seed(s)",
            TOTPDevice,
            keys.seed_counts,
            "run `manage.py otp_auth_rotate_keys`",
        ),
        (
            "recovery-code set(s)",
            RecoveryCodeSet,
            keys.recovery_code_counts,
            "keep the key until they are used up or regenerated",
        ),
    ]
    messages: list[CheckMessage] = []
    for alias in databases or []:
        for label, model, count, remedy in work:
            if not router.allow_migrate_model(alias, model):
                continue
            try:
                with transaction.atomic(using=alias):
                    counts = count(using=alias)
            except DatabaseError:
                continue  # not migrated yet: nothing to count
            if counts.at_risk:
                messages.append(
                    Warning(
                        f"{counts.at_risk} {label} in database {alias!r} depend on an "
                        "older key (a SECRET_KEY_FALLBACKS entry, or a later "
                        "SEED_ENCRYPTION_KEYS entry), or were written before key ids were "
                        "recorded and may: removing old keys now would make them unusable.",
                        hint=f"Before removing an old key, {remedy}; "
                        "`manage.py otp_auth_rotate_keys --dry-run` gives the counts.",
                        id="otp_auth.W031",
                    )
                )
            if counts.stranded:
                messages.append(
                    Warning(
                        f"{counts.stranded} {label} in database {alias!r} were written "
                        "under a key that is no longer configured and cannot be used.",
                        hint="Put the removed key back (as a fallback) if it still exists; "
                        "otherwise the users concerned must set up that factor again.",
                        id="otp_auth.W032",
                    )
                )
    return messages


# Django's own reset by emailed link, matched by class path (and subclasses).
DJANGO_RESET_VIEWS = frozenset(
    {
        "django.contrib.auth.views.PasswordResetView",
        "django.contrib.auth.views.PasswordResetConfirmView",
    }
)
# NIST SP 800-63B-4 §4.2.1.2: issued recovery codes live at most 10 minutes by SMS or
# voice, and 24 hours by email.
MAX_RESET_PHONE_TTL = 600
MAX_RESET_EMAIL_TTL = 86_400


@register(Tags.security, Tags.urls)
def check_password_reset(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``otp_auth.E040``: a reset code lives longer than NIST SP 800-63B-4 allows.
    ``otp_auth.W040``: Django's reset by link is routed, with links that outlive a day
    (``PASSWORD_RESET_TIMEOUT``, three days by default)."""
    try:
        enabled = app_settings.PASSWORD_RESET
        phone_ttl = app_settings.PASSWORD_RESET_PHONE_TTL
        email_ttl = app_settings.PASSWORD_RESET_EMAIL_TTL
        app_settings.PASSWORD_RESET_GRANT_TTL  # noqa: B018 - validates the value
        app_settings.PASSWORD_RESET_SECOND_FACTOR  # noqa: B018
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    messages: list[CheckMessage] = []
    limits = (
        (phone_ttl, MAX_RESET_PHONE_TTL, "PHONE", "SMS and voice"),
        (email_ttl, MAX_RESET_EMAIL_TTL, "EMAIL", "email"),
    )
    for ttl, ceiling, name, channels in limits:
        if enabled and ttl > ceiling:
            messages.append(
                Error(
                    f"OTP_AUTH['PASSWORD_RESET_{name}_TTL'] is {ttl} s: reset codes sent by "
                    f"{channels} may live at most {ceiling} s.",
                    hint=f"Set it to {ceiling} or less (NIST SP 800-63B-4 §4.2.1.2).",
                    id="otp_auth.E040",
                )
            )
    timeout = getattr(settings, "PASSWORD_RESET_TIMEOUT", 0)
    if isinstance(timeout, int | float) and timeout > MAX_RESET_EMAIL_TTL:
        try:
            routes = _routed_views()
        except (ImportError, ImproperlyConfigured):
            routes = []  # A broken URLconf is reported by Django's own URL checks.
        linked = [route for route, cb in routes if _class_paths(cb) & DJANGO_RESET_VIEWS]
        if linked:
            messages.append(
                Warning(
                    f"Django's password reset by link is routed at {', '.join(linked)} and "
                    f"its links live PASSWORD_RESET_TIMEOUT = {int(timeout)} s, more than a "
                    "day, against 24 hours at most for a code sent by email.",
                    hint="Lower PASSWORD_RESET_TIMEOUT to 86400 or less, or route "
                    "otp_auth's reset by code instead (see the README).",
                    id="otp_auth.W040",
                )
            )
    return messages


@register(Tags.urls)
def check_landing_page(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``otp_auth.W090``: after sign-in users are sent to ``LOGIN_REDIRECT_URL``, and it
    leads nowhere (Django's default ``/accounts/profile/`` in a new project is a 404)."""
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    try:
        target = app_settings.LOGIN_REDIRECT_URL
    except ImproperlyConfigured:
        return []  # reported by check_settings
    try:
        if target.startswith("/"):
            resolve(target.split("?", 1)[0])
        elif "/" not in target and "." not in target:
            reverse(target)
        else:
            return []  # an absolute URL, or another site: nothing to resolve here
    except (Resolver404, NoReverseMatch):
        return [
            Warning(
                f"LOGIN_REDIRECT_URL is {target!r}, which matches no URL: users land on a "
                "404 page after they sign in.",
                hint="Set LOGIN_REDIRECT_URL to a page of the site, for example "
                '"otp_auth:security" (the account security page).',
                id="otp_auth.W090",
            )
        ]
    except (ImportError, ImproperlyConfigured):
        return []  # A broken URLconf is reported by Django's own URL checks.
    return []


@register(Tags.templates)
def check_messages(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The SMS each purpose sends, rendered with a sample code.

    ``otp_auth.W060``: it needs more than one segment (160 GSM-7 characters, or 70 once
    one character needs UCS-2), so it costs more and may arrive in pieces.
    ``otp_auth.W061``: it has characters outside GSM-7 (curly quotes, some accents, emoji,
    often from ``SITE_NAME``), which switch the whole message to UCS-2: 70 characters per
    segment instead of 160.
    ``otp_auth.E060``: ``SMS_ORIGIN`` or ``SMS_APP_HASH`` is malformed.
    """
    if Channel.SMS not in _safe_channels():
        return []
    try:
        app_settings.SMS_ORIGIN  # noqa: B018
        app_settings.SMS_APP_HASH  # noqa: B018
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E060")]
    from django.template import TemplateSyntaxError
    from django.template.exceptions import TemplateDoesNotExist
    from django.utils import translation

    from .services.delivery import render_text, sms_units

    messages: list[CheckMessage] = []
    try:
        code = app_settings.CODE_ALPHABET[-1] * app_settings.CODE_LENGTH
    except ImproperlyConfigured:
        return []
    with translation.override(settings.LANGUAGE_CODE):
        for purpose in Purpose.values:
            try:
                text = render_text(purpose, Channel.SMS, code)
            except (TemplateDoesNotExist, TemplateSyntaxError, ImproperlyConfigured):
                continue
            encoding, length, offending = sms_units(text)
            limit = 160 if encoding == "gsm7" else 70
            if offending:
                messages.append(
                    Warning(
                        f"The {purpose} SMS contains characters outside GSM-7 "
                        f"({' '.join(repr(ch) for ch in offending[:5])}): it is sent as UCS-2, "
                        "70 characters per segment instead of 160.",
                        hint="Use straight quotes and GSM-7 letters in SITE_NAME and the "
                        "otp_auth/messages/ templates.",
                        id="otp_auth.W061",
                    )
                )
            if length > limit:
                messages.append(
                    Warning(
                        f"The {purpose} SMS is {length} {encoding.upper()} characters: more "
                        f"than one segment ({limit}), so each code costs two or more.",
                        hint="Shorten SITE_NAME or the otp_auth/messages/ SMS templates.",
                        id="otp_auth.W060",
                    )
                )
    return messages


def _safe_channels() -> list[str]:
    try:
        return app_settings.CHANNELS
    except ImproperlyConfigured:
        return []


# Cache backends whose counters live in one process: each worker counts on its own.
PROCESS_LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)
# Limits that stop SMS pumping and runaway bills when every other one is dodged.
BREAKER_LIMITS = ("send_budget", "send_per_calling_code", "enroll_send_budget")


@register(Tags.security, Tags.caches)
def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Production settings (``DEBUG`` off) that quietly weaken every limit or session.

    ``otp_auth.E070``: the rate-limit cache lives in one process. ``otp_auth.W070`` to
    ``W073``: session and CSRF cookie flags. ``otp_auth.W074``: a site-wide SMS/voice
    breaker is off while SMS or voice is enabled.
    """
    if settings.DEBUG:
        return []
    try:
        alias = app_settings.CACHE
        rates = app_settings.RATE_LIMITS
        channels = app_settings.CHANNELS
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    messages: list[CheckMessage] = []
    backend = str(getattr(settings, "CACHES", {}).get(alias, {}).get("BACKEND", ""))
    if backend in PROCESS_LOCAL_CACHES:
        messages.append(
            Error(
                f"The rate-limit cache {alias!r} ({backend}) is private to each process, and "
                "DEBUG is False: with several workers every limit is multiplied by their "
                "number, and ended logins and revoked credentials are not seen by the others.",
                hint="Point OTP_AUTH['CACHE'] at a Redis or Memcached cache shared by every "
                "process (a single-process server may silence otp_auth.E070 knowingly).",
                id="otp_auth.E070",
            )
        )
    cookies = (
        ("SESSION_COOKIE_SECURE", True, "the session cookie also travels over plain HTTP"),
        ("SESSION_COOKIE_HTTPONLY", True, "scripts on the page can read the session cookie"),
        ("CSRF_COOKIE_SECURE", True, "the CSRF cookie also travels over plain HTTP"),
    )
    for index, (name, wanted, risk) in enumerate(cookies):
        if getattr(settings, name, wanted) is not wanted:
            messages.append(
                Warning(
                    f"{name} is not {wanted} and DEBUG is False: {risk}.",
                    hint=f"Set {name} = {wanted} in production.",
                    id=f"otp_auth.W07{index}",
                )
            )
    samesite = getattr(settings, "SESSION_COOKIE_SAMESITE", "Lax")
    if samesite not in ("Lax", "Strict"):
        messages.append(
            Warning(
                f"SESSION_COOKIE_SAMESITE is {samesite!r}: other sites' requests carry the "
                "session cookie.",
                hint="Use 'Lax' (Django's default) or 'Strict'.",
                id="otp_auth.W073",
            )
        )
    if any(c in ("sms", "voice") for c in channels):
        off = [name for name in BREAKER_LIMITS if not rates[name]]
        if off:
            messages.append(
                Warning(
                    f"OTP_AUTH['RATE_LIMITS'] turns off {', '.join(off)} while SMS or voice is "
                    "enabled: nothing caps what SMS pumping through sign-ins or "
                    "enrollments can cost.",
                    hint="Set site-wide budgets that fit your traffic (see the README's "
                    "limits table) rather than None.",
                    id="otp_auth.W074",
                )
            )
    return messages


@register(Tags.security)
def check_background_sending(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``otp_auth.E080``: ``SEND_IN_BACKGROUND`` without a Tasks framework or with an
    unknown ``TASK_BACKEND``. ``otp_auth.W080``: a backend that sends in the request
    anyway (immediate) or never runs the task (dummy)."""
    from importlib.util import find_spec

    try:
        if not app_settings.SEND_IN_BACKGROUND:
            return []
        alias = app_settings.TASK_BACKEND
        app_settings.SEND_RETRIES  # noqa: B018 - validates the value
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    if find_spec("django.tasks") is None and find_spec("django_tasks") is None:
        return [
            Error(
                "OTP_AUTH['SEND_IN_BACKGROUND'] is on, but Django's Tasks framework is not "
                "installed: no code could be sent.",
                hint="Use Django 6, or install the backport: pip install 'otp-auth-django[tasks]'.",
                id="otp_auth.E080",
            )
        ]
    configured = getattr(settings, "TASKS", None)
    if configured is None:
        configured = {"default": {"BACKEND": "immediate.ImmediateBackend"}}
    backend = str(configured.get(alias, {}).get("BACKEND", ""))
    if not backend:
        return [
            Error(
                f"OTP_AUTH['TASK_BACKEND'] is {alias!r}, which is not in TASKS.",
                hint="Name a backend of settings.TASKS in OTP_AUTH['TASK_BACKEND'].",
                id="otp_auth.E080",
            )
        ]
    if backend.endswith(("ImmediateBackend", "DummyBackend")):
        what = "sends in the request anyway" if "Immediate" in backend else "never runs a task"
        return [
            Warning(
                f"OTP_AUTH['SEND_IN_BACKGROUND'] is on, but TASKS[{alias!r}] is {backend}, "
                f"which {what}.",
                hint="Use a backend with a worker (django-tasks-db's DatabaseBackend, RQ...).",
                id="otp_auth.W080",
            )
        ]
    return []


@register(Tags.security)
def check_webauthn(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Security keys and passkeys, when ``WEBAUTHN`` is on.

    ``otp_auth.E095``: the ``webauthn`` package (the ``webauthn`` extra) is not installed.
    ``otp_auth.W095``: ``DEBUG`` is off and ``WEBAUTHN_RP_ID`` is not set: credentials
    are bound to whatever host served the registration, and moving the site (or serving
    it under a second name) later makes them unusable.
    """
    try:
        enabled = app_settings.WEBAUTHN or app_settings.PASSKEY_LOGIN
        rp_id = app_settings.WEBAUTHN_RP_ID
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="otp_auth.E007", hint="Fix settings.OTP_AUTH.")]
    if not enabled:
        return []
    messages: list[CheckMessage] = []
    try:
        import webauthn  # noqa: F401
    except ImportError:
        messages.append(
            Error(
                "OTP_AUTH['WEBAUTHN'] is on but the webauthn package is not installed.",
                hint="pip install 'otp-auth-django[webauthn]'",
                id="otp_auth.E095",
            )
        )
    if rp_id is None and not settings.DEBUG:
        messages.append(
            Warning(
                "OTP_AUTH['WEBAUTHN_RP_ID'] is not set and DEBUG is False: security keys and "
                "passkeys are bound to the host that served each registration.",
                hint="Set WEBAUTHN_RP_ID to the site's registrable domain, e.g. 'example.com'.",
                id="otp_auth.W095",
            )
        )
    return messages
