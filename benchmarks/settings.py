"""Settings for the benchmark: production-like, minus real delivery and slow hashing.

SQLite in a file under a temporary directory by default; ``DATABASE_URL`` selects another
database (PostgreSQL), in which a throwaway ``otp_auth_bench`` database is created and
dropped. The MD5 hasher keeps password hashing from hiding everything else, and the
locmem provider keeps the network out of the figures. Sessions use Django's default
database backend; the runner also measures the cache backend, which is locmem unless
``CACHE_URL`` names another.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = "benchmark-secret-key-not-for-production-0123456789abcdefghijklmn"
ALLOWED_HOSTS = ["testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "otp_auth",
]

PLAIN_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The same stack with OTPMiddleware right after AuthenticationMiddleware.
MIDDLEWARE = [
    *PLAIN_MIDDLEWARE[:5],
    "otp_auth.middleware.OTPMiddleware",
    *PLAIN_MIDDLEWARE[5:],
]

ROOT_URLCONF = "benchmarks.urls"
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

_workdir = Path(os.environ.get("BENCH_WORKDIR") or tempfile.gettempdir())
_sqlite = _workdir / f"otp_auth_bench_{os.getpid()}.sqlite3"

if "DATABASE_URL" in os.environ:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    DATABASES["default"]["TEST"] = {"NAME": "otp_auth_bench"}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_sqlite),
            "TEST": {"NAME": str(_sqlite)},
        }
    }

# The package keeps rate-limit counters and the session-revocation version in the cache:
# locmem by default, ``CACHE_URL`` (e.g. rediscache://127.0.0.1:6379/9) for a shared one.
# A run leaves its keys there (prefix "otp_auth_bench"): point it at a scratch database.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
CACHES["default"]["KEY_PREFIX"] = "otp_auth_bench"
SESSION_ENGINE = "django.contrib.sessions.backends.db"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "otp_auth:login"
LOGIN_REDIRECT_URL = "/private/"

OTP_AUTH = {
    "PROVIDERS": {"default": {"BACKEND": "otp_auth.providers.locmem.LocmemProvider"}},
    "DEFAULT_REGION": "GH",
    # One client logs one user in thousands of times: the limits are raised out of reach,
    # not switched off, so their checks still run (and cost what they cost) on every step.
    "RATE_LIMITS": {
        "send_per_user": "1000000/d",
        "send_per_destination": "1000000/d",
        "send_per_ip": "1000000/d",
        "send_per_calling_code": "1000000/d",
        "send_budget": "1000000/d",
    },
}
# The locmem provider is refused with DEBUG off (otp_auth.E005): here it stands in for a
# real gateway on purpose, so the network stays out of the figures.
SILENCED_SYSTEM_CHECKS = ["otp_auth.E005"]
