"""``OTPBackend``: log a user in by challenge id and code, for sites with custom flows.

Django picks backends by the keyword arguments they accept. This one takes only
``otp_challenge`` and ``otp_code``, so ``authenticate(username=..., password=...)`` never
reaches it, and it never accepts a password.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from .constants import Purpose
from .exceptions import ChallengeLockedError, OTPAuthError, OTPBackendPermissionDenied
from .services import verify_challenge

__all__ = ["OTPBackend"]


class OTPBackend(ModelBackend):
    """A thin adapter over ``otp_auth.services.verify_challenge`` (purpose ``login``).

    The code may be passed as ``otp_code`` or as ``otp_token``. Prefer ``otp_token``:
    when every backend refuses, Django sends ``user_login_failed`` with the credentials,
    and it blanks only names that look secret ("token", "password", ...).
    """

    @sensitive_variables("otp_code", "otp_token")
    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        *,
        otp_challenge: str | None = None,
        otp_code: str | None = None,
        otp_token: str | None = None,
    ) -> Any:
        otp_code = otp_token if otp_code is None else otp_code
        if otp_challenge is None or otp_code is None:
            return None
        try:
            challenge = verify_challenge(
                otp_challenge, otp_code, purpose=Purpose.LOGIN, request=request
            )
        except ChallengeLockedError as exc:
            # Stop the chain: no other backend should accept this request.
            raise OTPBackendPermissionDenied(str(exc)) from exc
        except OTPAuthError:
            return None
        user = challenge.user
        return user if self.user_can_authenticate(user) else None

    async def aauthenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        *,
        otp_challenge: str | None = None,
        otp_code: str | None = None,
        otp_token: str | None = None,
    ) -> Any:
        return await sync_to_async(self.authenticate)(
            request, otp_challenge=otp_challenge, otp_code=otp_code, otp_token=otp_token
        )
