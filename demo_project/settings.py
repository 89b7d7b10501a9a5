"""Demo site settings, read from the environment (see ``.env.example``)."""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
# A fixed key is only acceptable because DEBUG defaults to True for the local demo.
SECRET_KEY = env.str("SECRET_KEY", default="demo-only-insecure-key-change-me-0123456789abcdef")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "otp_auth",
    "demo_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The pages in the browser's language, when otp_auth has it (see LANGUAGES).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "otp_auth.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # First, so that demo_project/templates/otp_auth/login.html extends the package's
        # sign-in page with a "Forgot password?" link.
        "DIRS": [BASE_DIR / "demo_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "demo_project.wsgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers: take the write lock when a transaction starts (no deadlock
    # between two readers that both want to write), wait up to 20 s for it instead of
    # failing at once, and let readers go on while one request writes (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        **DATABASES["default"].get("OPTIONS", {}),
    }
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("fr", "Français"),
    ("es", "Español"),
    ("pt-br", "Português (Brasil)"),
    ("de", "Deutsch"),
    ("ar", "العربية"),
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "otp_auth:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# COOKIE_SECURE=false: cookies over plain HTTP with DEBUG off (the load test on loopback).
SESSION_COOKIE_SECURE = env.bool("COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# OTP_PROVIDER picks the SMS/voice provider: "console" (default: codes are printed),
# "arkesel", "arkesel-verify", "twilio", "twilio-verify", "routing" (+233 through Arkesel,
# the rest through Twilio, each failing over to the other) or a provider's dotted path.
# Credentials come from the environment only. The *_BASE_URL variables point a vendor at
# another host, such as the fake servers (`python -m tests.fakes arkesel`).
ARKESEL_OPTIONS = {
    "api_key": env.str("ARKESEL_API_KEY", default=""),
    "sender_id": env.str("ARKESEL_SENDER_ID", default="OTPDemo"),
    "base_url": env.str("ARKESEL_BASE_URL", default="https://sms.arkesel.com"),
}
TWILIO_OPTIONS = {
    "account_sid": env.str("TWILIO_ACCOUNT_SID", default=""),
    "auth_token": env.str("TWILIO_AUTH_TOKEN", default=""),
}
TWILIO_SMS_OPTIONS = {
    **TWILIO_OPTIONS,
    "base_url": env.str("TWILIO_BASE_URL", default="https://api.twilio.com"),
    "from_number": env.str("TWILIO_FROM_NUMBER", default=""),
    "messaging_service_sid": env.str("TWILIO_MESSAGING_SERVICE_SID", default=""),
}
TWILIO_VERIFY_OPTIONS = {
    **TWILIO_OPTIONS,
    "base_url": env.str("TWILIO_VERIFY_BASE_URL", default="https://verify.twilio.com"),
    "service_sid": env.str("TWILIO_VERIFY_SERVICE_SID", default=""),
}
VENDOR_PROVIDERS = {
    "arkesel": {"BACKEND": "otp_auth.providers.arkesel.SMSProvider", "OPTIONS": ARKESEL_OPTIONS},
    "arkesel-verify": {
        "BACKEND": "otp_auth.providers.arkesel.VerifyProvider",
        "OPTIONS": ARKESEL_OPTIONS,
    },
    "twilio": {"BACKEND": "otp_auth.providers.twilio.SMSProvider", "OPTIONS": TWILIO_SMS_OPTIONS},
    "twilio-verify": {
        "BACKEND": "otp_auth.providers.twilio.VerifyProvider",
        "OPTIONS": TWILIO_VERIFY_OPTIONS,
    },
}
OTP_PROVIDER = env.str("OTP_PROVIDER", default="console")
if OTP_PROVIDER == "console":
    PROVIDERS = {"default": {"BACKEND": "otp_auth.providers.console.ConsoleProvider"}}
elif OTP_PROVIDER == "routing":
    PROVIDERS = {
        "default": {
            "BACKEND": "otp_auth.providers.routing.SMSProvider",
            "OPTIONS": {
                "routes": {
                    "sms": {"+233": ["arkesel", "twilio"], "*": ["twilio", "arkesel"]},
                    "voice": ["twilio"],
                }
            },
        },
        "arkesel": VENDOR_PROVIDERS["arkesel"],
        "twilio": VENDOR_PROVIDERS["twilio"],
    }
elif OTP_PROVIDER == "failover":
    # SMS through Twilio, then Arkesel when Twilio certainly did not take it (the load test).
    PROVIDERS = {
        "default": {
            "BACKEND": "otp_auth.providers.routing.SMSProvider",
            "OPTIONS": {"providers": ["twilio", "arkesel"]},
        },
        "arkesel": VENDOR_PROVIDERS["arkesel"],
        "twilio": {
            **VENDOR_PROVIDERS["twilio"],
            # OTP_CIRCUIT: JSON circuit-breaker settings for Twilio (FAILURES, WINDOW, COOL_OFF).
            **({"CIRCUIT": env.json("OTP_CIRCUIT")} if env.str("OTP_CIRCUIT", "") else {}),
        },
    }
elif OTP_PROVIDER in VENDOR_PROVIDERS:
    PROVIDERS = {"default": VENDOR_PROVIDERS[OTP_PROVIDER]}
else:
    PROVIDERS = {"default": {"BACKEND": OTP_PROVIDER}}

OTP_AUTH = {
    "SITE_NAME": "otp_auth demo",
    "PROVIDERS": {
        **PROVIDERS,
        "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
    },
    "CHANNEL_PROVIDERS": {"email": "email"},
    "DEFAULT_REGION": env.str("OTP_DEFAULT_REGION", default="GH"),
    "REQUIRE_ENROLLMENT": env.bool("OTP_REQUIRE_ENROLLMENT", default=False),
    # "Remember this browser" at the code step (off by default in the package).
    "TRUSTED_BROWSERS": env.bool("OTP_TRUSTED_BROWSERS", default=True),
    # Where vendors send delivery callbacks (scheme and host only); unset: none are asked.
    "WEBHOOK_BASE_URL": env.str("OTP_WEBHOOK_BASE_URL", default="") or None,
    "HTTP_CONNECT_TIMEOUT": env.float("OTP_HTTP_CONNECT_TIMEOUT", default=5.0),
    "HTTP_READ_TIMEOUT": env.float("OTP_HTTP_READ_TIMEOUT", default=15.0),
    # OTP_SEND_IN_BACKGROUND=true: the pages enqueue sends and `manage.py db_worker`
    # delivers them (django-tasks-db; on Django 5.2 the django-tasks backport too).
    "SEND_IN_BACKGROUND": env.bool("OTP_SEND_IN_BACKGROUND", default=False),
    # Security keys and passkeys (the ``webauthn`` extra), passkey sign-in, and sign-in by
    # an emailed or texted code. The RP id must be a domain: open the demo on localhost.
    "WEBAUTHN": env.bool("OTP_WEBAUTHN", default=True),
    "WEBAUTHN_RP_ID": env.str("OTP_WEBAUTHN_RP_ID", default="localhost"),
    "PASSKEY_LOGIN": env.bool("OTP_PASSKEY_LOGIN", default=True),
    "CODE_LOGIN": env.bool("OTP_CODE_LOGIN", default=True),
}
if OTP_AUTH["SEND_IN_BACKGROUND"]:
    from importlib.util import find_spec

    if find_spec("django.tasks") is None:
        INSTALLED_APPS += ["django_tasks"]
    INSTALLED_APPS += ["django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# OTP_RATE_LIMITS: JSON merged over the package's limits (the load test raises the
# site-wide budgets, which one loopback address would otherwise exhaust at once).
if env.str("OTP_RATE_LIMITS", default=""):
    import json

    OTP_AUTH["RATE_LIMITS"] = json.loads(env.str("OTP_RATE_LIMITS"))

# DEMO_PLAIN_LOGIN=true adds /plain/login/ and /plain/home/: Django's own password login,
# with no second factor, as the load test's baseline. Never in a real site.
DEMO_PLAIN_LOGIN = env.bool("DEMO_PLAIN_LOGIN", default=False)
if DEMO_PLAIN_LOGIN:
    OTP_AUTH["EXEMPT_PATHS"] = ["/plain/"]

# Relaxed limits, for trying things out: the package's defaults stop the one demo user
# after 5 codes to one phone in an hour and lock the second factor for 15 minutes after
# 10 refused codes. Here: 30 codes per phone or address an hour, a lock after 20 refused
# codes, for one minute. `manage.py otp_auth_reset_limits --user demo` clears every
# counter and lock at once. OTP_DEMO_PACKAGE_LIMITS=True keeps the package's defaults.
if not env.bool("OTP_DEMO_PACKAGE_LIMITS", default=False):
    OTP_AUTH["RATE_LIMITS"] = {
        "send_per_user": "60/h,300/d",
        "send_per_destination": "30/h,150/d",
        "enroll_send_per_user": "30/d",
        "enroll_send_per_ip": "30/h,100/d",
    }
    OTP_AUTH["LOCKOUT_THRESHOLD"] = 20
    OTP_AUTH["LOCKOUT_DURATION"] = 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"otp_auth": {"handlers": ["console"], "level": "INFO"}},
}

# The DRF API at /api/ (the ``drf`` extra), when installed. OTP_API_THROTTLE=false turns
# its DRF throttles off (the fuzzing script does); the limits in the services stay.
try:
    import drf_spectacular  # noqa: F401
    import rest_framework  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "drf_spectacular"]
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.TokenAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }
    if not env.bool("OTP_API_THROTTLE", default=True):
        REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = dict.fromkeys(
            ["otp_login", "otp_verify", "otp_send"]
        )
