"""Permissions that demand the second factor from API callers."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ..services.factors import has_confirmed_factor, requires_enrollment
from .credentials import credential_is_verified

__all__ = ["CanManageDevices", "IsOTPVerified", "IsOTPVerifiedIfConfigured"]


class IsOTPVerified(BasePermission):
    """Allows a user whose session or credential was issued after the second factor.

    A token obtained with the password alone (DRF's ``obtain_auth_token``, SimpleJWT's
    stock views, HTTP Basic) is refused with ``403 otp_required``. To recognise another
    kind of credential, subclass and override ``credential_is_verified``.
    """

    message = _("Second factor required.")
    code = "otp_required"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and self.credential_is_verified(request))

    def credential_is_verified(self, request: Request) -> bool:
        return credential_is_verified(request)


class IsOTPVerifiedIfConfigured(IsOTPVerified):
    """Like ``IsOTPVerified``, but lets through users without a second factor whom
    ``REQUIRE_ENROLLMENT`` does not send to enrollment (the API twin of
    ``otp_required(if_configured=True)``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if super().has_permission(request, view):
            return True
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and not has_confirmed_factor(user)
            and not requires_enrollment(user)
        )


class CanManageDevices(IsOTPVerified):
    """A verified caller, or a signed-in user with no second factor yet (the first
    enrollment, as in the HTML flow)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if super().has_permission(request, view):
            return True
        user = request.user
        return bool(user and user.is_authenticated and not has_confirmed_factor(user))
