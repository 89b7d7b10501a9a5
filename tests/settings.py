"""Test settings: SQLite in memory and locmem by default; PostgreSQL and Redis when
``DATABASE_URL`` / ``CACHE_URL`` are set (as ``.ci/run`` does)."""

from __future__ import annotations

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
# The locmem provider is refused with DEBUG off (otp_auth.E005); tests opt out knowingly.
SILENCED_SYSTEM_CHECKS = ["otp_auth.E005"]
