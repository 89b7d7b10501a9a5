"""Test settings: SQLite in memory and locmem by default; PostgreSQL and Redis when
``DATABASE_URL`` / ``CACHE_URL`` are set (as ``.ci/run`` does)."""

from __future__ import annotations

import importlib.util
import os

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdefghijklmnop"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "otp_auth",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "otp_auth.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASES = {"default": env.db_url("DATABASE_URL", default="sqlite://:memory:")}
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# Tests clear the cache between them (FLUSHDB on Redis): each xdist worker gets its own
# Redis database, so that one worker never wipes the counters of another's test.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and CACHES["default"]["BACKEND"].endswith("RedisCache"):
    _base, _, _db = str(CACHES["default"]["LOCATION"]).rpartition("/")
    CACHES["default"]["LOCATION"] = f"{_base}/{int(_db or 0) + int(_worker[2:])}"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "otp_auth:login"
LOGIN_REDIRECT_URL = "/home/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

OTP_AUTH = {
    "PROVIDERS": {
        "default": {"BACKEND": "otp_auth.providers.locmem.LocmemProvider"},
        "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
    },
    "CHANNEL_PROVIDERS": {"email": "email"},
    "DEFAULT_REGION": "GH",
}
# With DEBUG off, the locmem provider (otp_auth.E005), a per-process cache (E070) and
# cookies over plain HTTP (W070, W072) are reported; the test server is one process on
# http://testserver, so tests opt out knowingly (tests/test_checks.py asserts each one).
SILENCED_SYSTEM_CHECKS = ["otp_auth.E005", "otp_auth.E070", "otp_auth.W070", "otp_auth.W072"]

# Background sending: Django 6's django.tasks, else the django-tasks backport; the
# database backend's app (for tests that start its worker) when installed.
if importlib.util.find_spec("django.tasks") is not None:
    _TASKS_PACKAGE = "django.tasks"
elif importlib.util.find_spec("django_tasks") is not None:
    _TASKS_PACKAGE = "django_tasks"
    INSTALLED_APPS += ["django_tasks"]
else:
    _TASKS_PACKAGE = ""
if _TASKS_PACKAGE:
    TASKS = {"default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"}}
    if importlib.util.find_spec("django_tasks_db") is not None:
        INSTALLED_APPS += ["django_tasks_db"]

# The DRF API (the ``drf`` extra), when installed; the core suite runs without it.
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
        "TEST_REQUEST_DEFAULT_FORMAT": "json",
        # High enough never to trip across a test run; tests of the throttles lower them.
        "DEFAULT_THROTTLE_RATES": {
            "otp_login": "10000/min",
            "otp_verify": "10000/min",
            "otp_send": "10000/min",
        },
    }
