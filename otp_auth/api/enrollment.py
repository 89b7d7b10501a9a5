"""API views for authenticator apps, recovery codes and sign-in by code.

Enrolling an app: ``POST authenticators/`` answers its ``otpauth://`` URI, the key to
type and an SVG QR code (shown once; never logged), and a code from the app confirms it
(``authenticators/confirm/``). Every change follows the factor-change policy, as for
devices. Sign-in by code (``CODE_LOGIN``) answers alike for every identifier.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..exceptions import DeviceError
from ..models import RecoveryCodeSet, TOTPDevice
from ..services import api_flow, code_login
from ..services import recovery as recovery_service
from ..services import totp as totp_service
from ..services import webauthn as webauthn_service
from ..services.factors import confirmed_totp_devices
from ..services.password_reset import deliver_after
from . import serializers as s
from .credentials import credential_is_verified, issue_credential
from .permissions import CanManageDevices, IsOTPVerified
from .throttling import SendThrottle, VerifyThrottle
from .views import (
    AUTH_ERRORS,
    LIMITS,
    LOGIN_STEP_ERRORS,
    PROOF_ERRORS,
    STEP_UP_ERRORS,
    LoginStepView,
    OTPAPIView,
    _errors,
    _login_challenge,
    _ok,
    _pk,
    _require_fresh_factor,
)

__all__ = [
    "AuthenticatorConfirmView",
    "AuthenticatorListView",
    "AuthenticatorRemoveView",
    "CodeLoginVerifyView",
    "CodeLoginView",
    "RecoveryCodesView",
]


class AuthenticatorSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # the JSON key
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


APP = AuthenticatorSerializer()
PROVISIONING = inline_serializer(
    "AuthenticatorProvisioning",
    {
        "id": serializers.IntegerField(help_text=_("Confirm it with this id.")),
        "uri": serializers.CharField(help_text=_("The otpauth:// URI (holds the key).")),
        "secret": serializers.CharField(help_text=_("The key, Base32, for typing.")),
        "qr_svg": serializers.CharField(help_text=_("An SVG QR code of the URI.")),
    },
)
ERRORS_CHANGE = {
    400: PROOF_ERRORS,
    401: AUTH_ERRORS[401],
    403: f"{AUTH_ERRORS[403]} {STEP_UP_ERRORS}",
    429: LIMITS,
}


def _app(row: TOTPDevice) -> dict[str, Any]:
    return {
        "id": row.pk,
        "label": row.label,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
    }


class AddAppSerializer(serializers.Serializer[Any]):
    name = s.StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    step_up = s.StepUpProofSerializer(required=False)


class ConfirmAppSerializer(serializers.Serializer[Any]):
    id = s.device_id_field()
    code = s.code_field()
    name = s.StrictCharField(max_length=64, required=False, allow_blank=True, default="")


class ProofSerializer(serializers.Serializer[Any]):
    step_up = s.StepUpProofSerializer(required=False)


class AuthenticatorListView(OTPAPIView):
    permission_classes = [CanManageDevices]

    @extend_schema(
        summary="List authenticator apps",
        description="The user's confirmed authenticator apps, most recently used first.",
        responses={
            200: _ok(AuthenticatorSerializer(many=True), "The confirmed apps."),
            **_errors(AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        return Response([_app(row) for row in confirmed_totp_devices(request.user)])

    @extend_schema(
        summary="Add an authenticator app",
        description="A new, unconfirmed app with a fresh key: show the QR code or the key, "
        "then confirm with a code from the app. Once the user has a factor, needs a fresh "
        "second factor (`step_up`).",
        request=AddAppSerializer,
        responses={201: _ok(PROVISIONING, "Scan or type it."), **_errors(ERRORS_CHANGE)},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(AddAppSerializer)
        _require_fresh_factor(request, data.get("step_up"))
        device = totp_service.create_device(request.user, name=data["name"])
        setup = totp_service.provisioning(
            device,
            account=request.user.get_username(),
            issuer=totp_service.issuer_name(request._request),
        )
        body = {"id": device.pk, "uri": setup.uri, "secret": setup.secret, "qr_svg": setup.qr_svg}
        return Response(body, status=status.HTTP_201_CREATED)


class AuthenticatorConfirmView(OTPAPIView):
    permission_classes = [CanManageDevices]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Confirm an authenticator app",
        description="A code from the app activates it. For a caller whose credential was "
        "not verified yet (their first factor), the answer carries a verified credential.",
        request=ConfirmAppSerializer,
        responses={
            200: _ok(
                inline_serializer(
                    "AuthenticatorConfirmed",
                    {"authenticator": APP, "credential": s.CredentialSerializer(allow_null=True)},
                ),
                "Confirmed.",
            ),
            **_errors({400: "`invalid`; `invalid_code`.", **AUTH_ERRORS, 429: LIMITS}),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ConfirmAppSerializer)
        device = totp_service.confirm_device(
            request.user, data["id"], data["code"], name=data["name"], request=request._request
        )
        credential = None
        if not credential_is_verified(request):
            credential = issue_credential(request, request.user, factor="totp", backend=None)
        return Response({"authenticator": _app(device), "credential": credential})


class AuthenticatorRemoveView(OTPAPIView):
    permission_classes = [IsOTPVerified]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Remove an authenticator app",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The app id.")],
        request=ProofSerializer,
        responses={
            204: _ok(None, "Removed."),
            **_errors({**ERRORS_CHANGE, 404: "`not_found`: no such app on this account."}),
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        data = self.validated(ProofSerializer)
        app_id = int(pk) if pk.isascii() and pk.isdigit() else 0
        if not 0 < app_id <= s.MAX_ID or not (
            TOTPDevice.objects.filter(user_id=_pk(request), pk=app_id, confirmed=True).exists()
        ):
            raise exceptions.NotFound()
        _require_fresh_factor(request, data.get("step_up"))
        try:
            totp_service.remove_totp_device(request.user, app_id, request=request._request)
        except DeviceError as exc:
            raise exceptions.NotFound() from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


RECOVERY_STATUS = inline_serializer(
    "RecoveryCodesStatus",
    {
        "generated": serializers.BooleanField(help_text=_("False: never generated.")),
        "remaining": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "generated_at": serializers.DateTimeField(allow_null=True),
    },
)


class RecoveryCodesView(OTPAPIView):
    permission_classes = [IsOTPVerified]

    def get_throttles(self) -> list[Any]:
        return [VerifyThrottle()] if self.request.method == "POST" else super().get_throttles()

    @extend_schema(
        summary="Count recovery codes",
        description="`generated: false` for a user who never had any; otherwise how many "
        "of the set are left.",
        responses={200: _ok(RECOVERY_STATUS, "The count."), **_errors(AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        code_set = RecoveryCodeSet.objects.filter(user_id=_pk(request)).first()
        total = code_set.codes.count() if code_set else 0
        return Response(
            {
                "generated": code_set is not None,
                "remaining": recovery_service.remaining_codes(request.user) if code_set else 0,
                "total": total,
                "generated_at": code_set.created_at if code_set else None,
            }
        )

    @extend_schema(
        summary="Generate recovery codes",
        description="A new set, returned once; every earlier code stops working. Needs a "
        "fresh second factor (`step_up`).",
        request=ProofSerializer,
        responses={
            201: _ok(
                inline_serializer(
                    "RecoveryCodes", {"codes": serializers.ListField(child=serializers.CharField())}
                ),
                "The codes: show them once.",
            ),
            **_errors(ERRORS_CHANGE),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(ProofSerializer)
        _require_fresh_factor(request, data.get("step_up"))
        codes = recovery_service.generate_codes(request.user, request=request._request)
        return Response({"codes": list(codes)}, status=status.HTTP_201_CREATED)


class CodeLoginSerializer(serializers.Serializer[Any]):
    identifier = s.StrictCharField(
        max_length=254, help_text=_("A username, email address or phone number.")
    )


class CodeLoginVerifySerializer(serializers.Serializer[Any]):
    flow = s.StrictCharField(max_length=64, help_text=_("The flow from the request step."))
    code = s.code_field()


def _enabled() -> None:
    if not app_settings.CODE_LOGIN:
        raise exceptions.NotFound()


class CodeLoginView(LoginStepView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Sign in by code: request",
        description="Always 202 with a `flow`, whether or not an account matched: if one "
        "did, a code goes to its most recently used device.",
        request=CodeLoginSerializer,
        responses={
            202: _ok(
                inline_serializer("CodeLoginFlow", {"flow": serializers.CharField()}),
                "Recorded.",
            ),
            **_errors({400: "`invalid`.", 403: "`csrf_failed`.", 404: "`not_found`: off."}),
        },
    )
    def post(self, request: Request) -> Any:
        data = self.validated(CodeLoginSerializer)
        _enabled()
        started = code_login.request_code(data["identifier"], request=request._request)
        response = Response({"flow": started.flow}, status=status.HTTP_202_ACCEPTED)
        return deliver_after(response, started.deliver)


class CodeLoginVerifyView(LoginStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Sign in by code: the code",
        description="With `CODE_LOGIN_SINGLE_FACTOR` and an account without a usable "
        "password, the code alone signs in (200). Otherwise it counts as one factor and a "
        "login `challenge` for a second, independent factor is answered (202), to finish "
        "with the login steps.",
        request=CodeLoginVerifySerializer,
        responses={
            200: _ok(s.CredentialSerializer, "Signed in."),
            202: _ok(s.LoginChallengeSerializer, "A second factor is due."),
            **_errors(
                {
                    **LOGIN_STEP_ERRORS,
                    400: "`invalid`; `device_error`: no second factor besides this device.",
                    404: "`not_found`: off.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(CodeLoginVerifySerializer)
        _enabled()
        outcome = code_login.verify_code(data["flow"], data["code"], request=request._request)
        backend = webauthn_service.login_backend()
        if outcome.complete:
            body = issue_credential(request, outcome.user, factor="code_login", backend=backend)
            return Response(body)
        exclude = f"device:{outcome.device_id}"
        started = api_flow.start_login(
            outcome.user, backend=backend, request=request._request, exclude=exclude
        )
        if started is None:
            raise code_login.no_second_factor()
        return Response(_login_challenge(*started), status=status.HTTP_202_ACCEPTED)
