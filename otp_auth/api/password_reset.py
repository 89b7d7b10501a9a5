"""API for the password reset by code: the steps of the HTML pages, on the same services,
counters and limits (see ``otp_auth.services.password_reset``).

1. ``POST password-reset/`` with a username, email or phone number: always ``202`` with
   an opaque ``reset`` id, whether or not an account matched.
2. ``POST password-reset/verify/`` with ``reset`` and the code: an opaque ``grant``,
   valid ``PASSWORD_RESET_GRANT_TTL`` seconds, and the factors that can back it.
3. ``POST password-reset/send/`` (when the second factor is another device): sends it a
   code.
4. ``POST password-reset/complete/`` with ``grant``, ``new_password`` and, when asked,
   ``second_factor``: the password is set; every session and token of the user ends and
   nothing is issued.

Everything travels in JSON bodies, never in the URL.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..constants import Channel
from ..services import password_reset as reset_service
from . import serializers as s
from .throttling import SendThrottle, VerifyThrottle
from .views import LIMITS, LoginStepView, _errors, _ok

__all__ = [
    "PasswordResetCompleteView",
    "PasswordResetSendView",
    "PasswordResetVerifyView",
    "PasswordResetView",
]

REQUESTED = _(
    "If an account matches and has a confirmed phone or email address, a code is on its way to it."
)
CHANGED = _("The password was changed. Sign in with it and your second factor.")


# Requests ------------------------------------------------------------------------------


class ResetRequestSerializer(serializers.Serializer[Any]):
    identifier = s.StrictCharField(
        max_length=254,
        trim_whitespace=False,
        help_text=_("Username, email address or phone number of the account."),
    )
    channel = serializers.ChoiceField(
        choices=Channel.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Where to send the code; left out, the device used last."),
    )


class ResetVerifySerializer(serializers.Serializer[Any]):
    reset = s.StrictCharField(max_length=64, help_text=_("The id from the request step."))
    code = s.code_field()


class ResetSendSerializer(serializers.Serializer[Any]):
    grant = s.StrictCharField(max_length=128, help_text=_("The grant from the verify step."))
    factor = s.StrictCharField(
        max_length=64, help_text=_("A 'device:<id>' key from the verify answer's factors.")
    )


class SecondFactorSerializer(serializers.Serializer[Any]):
    factor = s.StrictCharField(
        max_length=64, help_text=_("A key from the verify answer's factors.")
    )
    code = s.code_field()


class ResetCompleteSerializer(serializers.Serializer[Any]):
    grant = s.StrictCharField(max_length=128, help_text=_("The grant from the verify step."))
    new_password = s.StrictCharField(
        max_length=4096, trim_whitespace=False, style={"input_type": "password"}
    )
    second_factor = SecondFactorSerializer(
        required=False,
        help_text=_("Needed when the verify answer says second_factor_required."),
    )


# Responses -----------------------------------------------------------------------------


class ResetStartedSerializer(serializers.Serializer[Any]):
    reset = serializers.CharField(help_text=_("Send it back with the code."))
    detail = serializers.CharField()


class ResetGrantSerializer(serializers.Serializer[Any]):
    grant = serializers.CharField(
        help_text=_("Send it back to set the password; it is shown only once.")
    )
    expires_at = serializers.DateTimeField()
    second_factor_required = serializers.BooleanField(
        help_text=_("True: complete needs one of 'factors' as second_factor.")
    )
    second_factor_available = serializers.BooleanField(
        help_text=_(
            "False while a second factor is required: the account has none besides the "
            "device that got the code, and cannot be reset here."
        )
    )
    factors = s.FactorSerializer(
        many=True, help_text=_("The factors that can back the reset code.")
    )


class ResetCodeSentSerializer(serializers.Serializer[Any]):
    channel = serializers.ChoiceField(choices=Channel.choices)
    destination = serializers.CharField(help_text=_("Masked: ••••4567 or a••••@example.com."))
    expires_at = serializers.DateTimeField()


class ResetDoneSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()


# Views ---------------------------------------------------------------------------------


class ResetStepView(LoginStepView):
    """Anonymous, like the login steps (CSRF whenever a session cookie comes along), and
    absent while ``PASSWORD_RESET`` is off."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not app_settings.PASSWORD_RESET:
            raise exceptions.NotFound()
        super().initial(request, *args, **kwargs)


STEP_ERRORS = {
    400: "`invalid`: a field is missing, of the wrong type, or sent in the URL.",
    403: "`csrf_failed`: a session client sent no CSRF token.",
    404: "`not_found`: password reset is turned off (`PASSWORD_RESET`).",
}


class PasswordResetView(ResetStepView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Password reset: ask for a code",
        description="Always answers 202 with a new `reset` id, whether or not an account "
        "matches, and in the same time: the code goes out after the answer, to a confirmed "
        "device of the account (the `channel` asked for, or the device used last). Over "
        "the per-account or per-address limit the answer is the same and nothing is sent.",
        request=ResetRequestSerializer,
        responses={
            202: _ok(ResetStartedSerializer, "Recorded; a code was sent if an account matched."),
            **_errors({**STEP_ERRORS, 429: "`throttled` (with `Retry-After`)."}),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ResetRequestSerializer)
        started = reset_service.request_reset(
            data["identifier"], channel=data["channel"], request=request._request
        )
        body = {"reset": started.reset.public_id, "detail": str(REQUESTED)}
        response = Response(body, status=status.HTTP_202_ACCEPTED)
        reset_service.deliver_after(response, started.deliver)
        return response


def _grant_body(reset: Any, grant: str) -> dict[str, Any]:
    required = reset_service.needs_second_factor(reset)
    factors = reset_service.second_factors(reset) if required else []
    body = {
        "grant": grant,
        "expires_at": reset.grant_expires_at,
        "second_factor_required": required,
        "second_factor_available": bool(factors) or not required,
        "factors": factors,
    }
    return dict(ResetGrantSerializer(body).data)


class PasswordResetVerifyView(ResetStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Password reset: check the code",
        description="Turns the code into a `grant` for setting the password; the `reset` "
        "id stops working. Wrong codes count per code, per address and per account, but "
        "never toward the account's lockout.",
        request=ResetVerifySerializer,
        responses={
            200: _ok(ResetGrantSerializer, "The code was accepted."),
            **_errors(
                {
                    **STEP_ERRORS,
                    401: "`invalid_code` (wrong, expired, used or unknown: one answer), "
                    "`challenge_locked`.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ResetVerifySerializer)
        reset, grant = reset_service.verify_reset(
            data["reset"], data["code"], request=request._request
        )
        return Response(_grant_body(reset, grant))


class PasswordResetSendView(ResetStepView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Password reset: send a second-factor code",
        description="Sends a code to another device of the account (a `device:<id>` "
        "factor of the verify answer); asking again for the same device is a resend.",
        request=ResetSendSerializer,
        responses={
            202: _ok(ResetCodeSentSerializer, "A code was sent."),
            **_errors(
                {
                    **STEP_ERRORS,
                    400: f"{STEP_ERRORS[400]} `device_error`: not a device factor of the grant.",
                    401: "`reset_expired`: the grant is unknown, used or expired; "
                    "`challenge_locked`.",
                    429: f"`resend_too_soon` (with `Retry-After`), `resend_limit`; {LIMITS}",
                    503: "`delivery_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ResetSendSerializer)
        challenge = reset_service.send_second_code(
            data["grant"], data["factor"], request=request._request
        )
        body = {
            "channel": challenge.channel,
            "destination": challenge.destination_masked,
            "expires_at": challenge.expires_at,
        }
        return Response(ResetCodeSentSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class PasswordResetCompleteView(ResetStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Password reset: set the new password",
        description="Checks the password with the project's validators, then the second "
        "factor if one is required, then sets the password. Every session, pending code "
        "and DRF token of the user is revoked and no credential is issued: sign in again.",
        request=ResetCompleteSerializer,
        responses={
            200: _ok(ResetDoneSerializer, "The password was changed."),
            **_errors(
                {
                    **STEP_ERRORS,
                    400: f"{STEP_ERRORS[400]} With `fields.new_password`: refused by the "
                    "password validators. `device_error`: not a factor of the grant.",
                    401: "`reset_expired`: the grant is unknown, used or expired; "
                    "`invalid_code` or `challenge_locked` for the second factor.",
                    403: f"{STEP_ERRORS[403]} `second_factor_required`; "
                    "`second_factor_unavailable`: the account cannot be reset this way.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ResetCompleteSerializer)
        proof = data.get("second_factor")
        try:
            reset_service.complete_reset(
                data["grant"],
                data["new_password"],
                second_factor=(proof["factor"], proof["code"]) if proof else None,
                request=request._request,
            )
        except DjangoValidationError as exc:
            raise exceptions.ValidationError({"new_password": list(exc.messages)}) from exc
        return Response({"detail": str(CHANGED)})
