"""DRF throttles for the API: an extra layer in front of the limits in the services.

The real limits (attempts per challenge, resend cooldown and count) live in the database
rows that the services lock and count, and hold with these throttles off. Rates come from
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under the scopes below (``None`` disables
one), with the defaults here. Clients are told apart by user, or by ``REMOTE_ADDR``:
never by ``X-Forwarded-For``, which a client can forge.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ..utils import client_ip

__all__ = ["LoginThrottle", "OTPRateThrottle", "SendThrottle", "VerifyThrottle"]


class OTPRateThrottle(SimpleRateThrottle):
    scope: str
    default_rate: str | None = None

    def get_rate(self) -> str | None:
        # Read at call time (DRF binds THROTTLE_RATES at import, so override_settings
        # would not reach it), with a default so projects need no configuration.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        rate = rates.get(self.scope, self.default_rate)
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{client_ip(request._request) or 'unknown'}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginThrottle(OTPRateThrottle):
    """Password steps (``otp_login``, 10 a minute)."""

    scope = "otp_login"
    default_rate = "10/min"


class VerifyThrottle(OTPRateThrottle):
    """Code submissions (``otp_verify``, 20 a minute)."""

    scope = "otp_verify"
    default_rate = "20/min"


class SendThrottle(OTPRateThrottle):
    """Requests that send a message: resend, switch, add device, step-up (``otp_send``,
    5 a minute)."""

    scope = "otp_send"
    default_rate = "5/min"
