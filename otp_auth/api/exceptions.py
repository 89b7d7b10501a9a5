"""One error shape for every API response: ``{"code": "...", "detail": "..."}``.

``code`` is stable: the ``.code`` of the domain exception (``invalid_code``,
``challenge_locked``, ``resend_too_soon``...), or DRF's code (``not_authenticated``,
``throttled``...). Validation errors add ``fields``: ``{"field": ["message", ...]}``.
The API views use this handler whatever the project's ``EXCEPTION_HANDLER`` is.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..exceptions import (
    ChallengeError,
    DeliveryError,
    OTPAuthError,
    RateLimitedError,
    ResendLimitError,
    ResendTooSoonError,
    StepUpRequiredError,
)

__all__ = [
    "CSRFFailed",
    "InvalidCredentials",
    "LOGIN_AUTHENTICATE_HEADER",
    "exception_handler",
    "public_code",
    "status_for",
]

#: Sent with the 401 answers of the login steps, which have no HTTP auth scheme.
LOGIN_AUTHENTICATE_HEADER = 'OTP realm="api"'


class InvalidCredentials(exceptions.APIException):
    """Wrong username or password, an inactive user, or one a backend refused: one answer
    for all (no account enumeration)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_credentials"
    default_detail = _("Please enter a correct username and password.")


class CSRFFailed(exceptions.PermissionDenied):
    default_code = "csrf_failed"
    default_detail = _("CSRF check failed.")


def public_code(exc: OTPAuthError) -> str:
    """The code a client sees. Provider failures all read ``delivery_failed``, unless the
    error carries a message meant for the user (an invalid or blocked number)."""
    if (
        isinstance(exc, DeliveryError)
        and type(exc).default_message is DeliveryError.default_message
    ):
        return DeliveryError.code
    return exc.code


def status_for(exc: OTPAuthError, *, refused_status: int = 400) -> int:
    """HTTP status of a domain error. ``refused_status`` is for refused codes: 401 on the
    login steps (the code is the credential there), 400 for a signed-in user, whose own
    credential is fine."""
    if isinstance(exc, ResendTooSoonError | ResendLimitError | RateLimitedError):
        return status.HTTP_429_TOO_MANY_REQUESTS
    if isinstance(exc, ChallengeError):
        return refused_status
    if isinstance(exc, StepUpRequiredError):
        return status.HTTP_403_FORBIDDEN
    if isinstance(exc, DeliveryError):
        if public_code(exc) == DeliveryError.code:
            return status.HTTP_503_SERVICE_UNAVAILABLE
        return status.HTTP_400_BAD_REQUEST
    return status.HTTP_400_BAD_REQUEST


def _domain_response(exc: OTPAuthError, refused_status: int) -> Response:
    code = public_code(exc)
    message = exc.message if code == exc.code else DeliveryError.default_message
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, ResendTooSoonError | RateLimitedError) and retry_after is not None:
        headers["Retry-After"] = str(max(int(retry_after), 1))
    return Response(
        {"code": code, "detail": str(message)},
        status=status_for(exc, refused_status=refused_status),
        headers=headers,
    )


def _api_code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
        return CSRFFailed.default_code  # raised by DRF's SessionAuthentication
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map ``exc`` to a response in the API's error shape; ``None`` lets it propagate."""
    view = context.get("view")
    refused_status = getattr(view, "refused_status", status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OTPAuthError):
        # No set_rollback(): under ATOMIC_REQUESTS it would undo the failed attempt that
        # the service has just counted.
        response = _domain_response(exc, refused_status)
    else:
        if isinstance(exc, Http404):
            exc = exceptions.NotFound()
        elif isinstance(exc, DjangoPermissionDenied):
            exc = exceptions.PermissionDenied()
        if not isinstance(exc, exceptions.APIException):
            return None
        set_rollback()
        if isinstance(exc, exceptions.ValidationError):
            fields = (
                exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            )
            body: dict[str, Any] = {
                "code": "invalid",
                "detail": str(_("Some fields are missing or invalid.")),
                "fields": fields,
            }
        else:
            body = {"code": _api_code(exc), "detail": str(exc.detail)}
        response = Response(body, status=exc.status_code)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(max(int(exc.wait), 1))  # type: ignore[attr-defined]
    if response.status_code == status.HTTP_401_UNAUTHORIZED and not response.has_header(
        "WWW-Authenticate"
    ):
        response["WWW-Authenticate"] = LOGIN_AUTHENTICATE_HEADER
    return response
