"""Settings for tests/importing: the test settings plus the packages ``otp_auth_import``
reads (django-otp, django-two-factor-auth, django-allauth's mfa), installed for real.

A settings module of its own, so the main suite runs without those apps;
tests/test_import_suite.py runs tests/importing in a pytest process of its own.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "phonenumber_field",
    "two_factor",
    "two_factor.plugins.phonenumber",
    "allauth",
    "allauth.account",
    "allauth.mfa",
]
MIDDLEWARE = [*MIDDLEWARE, "allauth.account.middleware.AccountMiddleware"]
# allauth's hook for encrypting secrets at rest: the import must open them through it.
MFA_ADAPTER = "tests.importing.adapter.SealingMFAAdapter"

# A test database of its own on PostgreSQL: the suite that starts this one may be using
# the default test database name at the same time.
if not DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _name = DATABASES["default"]["NAME"]
    DATABASES = {"default": {**DATABASES["default"], "TEST": {"NAME": f"test_{_name}_import"}}}
