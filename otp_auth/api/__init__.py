"""Django REST Framework API for the two-step login and device management.

Install with the ``drf`` extra (``pip install "otp-auth-django[drf]"``) and route it with
``path("api/", include("otp_auth.api.urls"))``. This package is the only part of
``otp_auth`` that imports ``rest_framework``; the rest of the app works without it.
"""

from __future__ import annotations

try:
    import rest_framework  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "otp_auth.api needs Django REST Framework: pip install 'otp-auth-django[drf]'."
    ) from exc
