"""API views for security keys and passkeys (WebAuthn).

Each ceremony is two calls: ``.../options/`` answers a ``ceremony`` id and the
``publicKey`` options for ``navigator.credentials.create()`` / ``get()`` (binary values
as base64url, as py_webauthn's JSON and the browser's ``PublicKeyCredential.toJSON()``
use); the second call sends the ``ceremony`` back with the browser's ``credential``
(its JSON form). Ceremonies are single-use, expire after ``WEBAUTHN_TIMEOUT`` and are
bound to the login flow, the user, or the passkey sign-in that asked for them.
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
from ..models import WebAuthnCredential
from ..services import api_flow
from ..services import webauthn as webauthn_service
from ..services.challenges import cancel_challenge
from . import serializers as s
from .credentials import credential_is_verified, issue_credential
from .permissions import CanManageDevices, IsOTPVerified
from .throttling import LoginThrottle, VerifyThrottle
from .views import (
    AUTH_ERRORS,
    LIMITS,
    PROOF_ERRORS,
    STEP_UP_ERRORS,
    LoginStepView,
    OTPAPIView,
    _errors,
    _ok,
    _pk,
    _require_fresh_factor,
)

__all__ = [
    "KeyListView",
    "KeyRegisterOptionsView",
    "KeyRegisterView",
    "KeyRemoveView",
    "LoginKeyOptionsView",
    "LoginKeyView",
    "PasskeyLoginView",
    "PasskeyOptionsView",
]


def _enabled(passkey: bool = False) -> None:
    if not webauthn_service.available() or not app_settings.WEBAUTHN:
        raise exceptions.NotFound()
    if passkey and not app_settings.PASSKEY_LOGIN:
        raise exceptions.NotFound()


class CeremonyField(s.StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=64, help_text=_("The ceremony id from the options call."))


class BrowserCredentialField(serializers.DictField):
    """The browser's ``PublicKeyCredential`` in its JSON form."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            help_text=_("The PublicKeyCredential as JSON (id, rawId, type, response).")
        )


OPTIONS = inline_serializer(
    "WebAuthnOptions",
    {
        "ceremony": serializers.CharField(help_text=_("Send it back with the answer.")),
        "publicKey": serializers.DictField(
            help_text=_("Options for navigator.credentials.create() or get(), base64url.")
        ),
    },
)


class SecurityKeySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # the JSON key
    passkey = serializers.BooleanField(help_text=_("Discoverable or synced."))
    backed_up = serializers.BooleanField()
    transports = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


KEY = SecurityKeySerializer()


def _key(row: WebAuthnCredential) -> dict[str, Any]:
    return {
        "id": row.pk,
        "name": row.name,
        "label": row.label,
        "passkey": row.is_passkey,
        "backed_up": row.backed_up,
        "transports": list(row.transports or []),
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
    }


class RegisterOptionsSerializer(serializers.Serializer[Any]):
    passkey = serializers.BooleanField(
        default=False, help_text=_("Ask for a passkey (discoverable, user-verified).")
    )
    step_up = s.StepUpProofSerializer(required=False)


class RegisterSerializer(serializers.Serializer[Any]):
    ceremony = CeremonyField()
    credential = BrowserCredentialField()
    name = s.StrictCharField(max_length=64, required=False, allow_blank=True, default="")


class RemoveSerializer(serializers.Serializer[Any]):
    step_up = s.StepUpProofSerializer(required=False)


class LoginKeySerializer(s.FlowSerializer):
    ceremony = CeremonyField()
    credential = BrowserCredentialField()


class PasskeySerializer(serializers.Serializer[Any]):
    ceremony = CeremonyField()
    credential = BrowserCredentialField()


def _user_bind(user: Any) -> str:
    return f"user:{user.pk}"


class KeyListView(OTPAPIView):
    permission_classes = [IsOTPVerified]

    @extend_schema(
        summary="List security keys and passkeys",
        description="The user's registered keys, newest first. Nothing secret: public "
        "keys are not even listed.",
        responses={200: _ok(SecurityKeySerializer(many=True), "The keys."), **_errors(AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        rows = WebAuthnCredential.objects.filter(user_id=_pk(request)).order_by("-created_at")
        return Response([_key(row) for row in rows])


class KeyRegisterOptionsView(OTPAPIView):
    permission_classes = [CanManageDevices]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Register a security key or passkey: options",
        description="Starts a registration ceremony. Once the user has a factor, needs a "
        "fresh second factor (`step_up`), as for every factor change.",
        request=RegisterOptionsSerializer,
        responses={
            200: _ok(OPTIONS, "The ceremony and its options."),
            **_errors(
                {
                    400: f"{PROOF_ERRORS} `device_error`: too many keys.",
                    401: AUTH_ERRORS[401],
                    403: f"{AUTH_ERRORS[403]} {STEP_UP_ERRORS}",
                    404: "`not_found`: WebAuthn is off.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(RegisterOptionsSerializer)
        _enabled()
        _require_fresh_factor(request, data.get("step_up"))
        ceremony, options = webauthn_service.registration_options(
            request.user,
            request=request._request,
            bind=_user_bind(request.user),
            passkey=data["passkey"],
        )
        return Response({"ceremony": ceremony.id, "publicKey": options})


class KeyRegisterView(OTPAPIView):
    permission_classes = [CanManageDevices]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Register a security key or passkey",
        description="Verifies the authenticator's answer (challenge, origin, RP id) and "
        "stores the key. For a caller whose credential was not verified yet (their first "
        "factor), the answer carries a new, verified credential.",
        request=RegisterSerializer,
        responses={
            201: _ok(
                inline_serializer(
                    "SecurityKeyRegistered",
                    {"key": KEY, "credential": s.CredentialSerializer(allow_null=True)},
                ),
                "Registered.",
            ),
            **_errors(
                {
                    400: "`invalid`; `webauthn_registration_failed`; `flow_expired`.",
                    **AUTH_ERRORS,
                    404: "`not_found`: WebAuthn is off.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(RegisterSerializer)
        _enabled()
        row = webauthn_service.register(
            request.user,
            data["ceremony"],
            data["credential"],
            bind=_user_bind(request.user),
            name=data["name"],
            request=request._request,
            mark_session=False,  # the credential below is the answer
        )
        credential = None
        if not credential_is_verified(request):
            credential = issue_credential(request, request.user, factor="webauthn", backend=None)
        return Response(
            {"key": _key(row), "credential": credential}, status=status.HTTP_201_CREATED
        )


class KeyRemoveView(OTPAPIView):
    permission_classes = [IsOTPVerified]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Remove a security key or passkey",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The key id.")],
        description="Needs a fresh second factor: a `step_up` code, or a session that "
        "passed one within `STEP_UP_MAX_AGE`.",
        request=RemoveSerializer,
        responses={
            204: _ok(None, "Removed."),
            **_errors(
                {
                    400: PROOF_ERRORS,
                    401: AUTH_ERRORS[401],
                    403: f"{AUTH_ERRORS[403]} {STEP_UP_ERRORS}",
                    404: "`not_found`: no such key on this account.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        data = self.validated(RemoveSerializer)
        key_id = int(pk) if pk.isascii() and pk.isdigit() else 0
        if not 0 < key_id <= s.MAX_ID or not (
            WebAuthnCredential.objects.filter(user_id=_pk(request), pk=key_id).exists()
        ):
            raise exceptions.NotFound()
        _require_fresh_factor(request, data.get("step_up"))
        try:
            webauthn_service.remove_credential(request.user, key_id, request=request._request)
        except DeviceError as exc:  # removed meanwhile
            raise exceptions.NotFound() from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class LoginKeyOptionsView(LoginStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Log in: security key options",
        description="For a login `challenge` of `kind: webauthn`: the options for "
        "`navigator.credentials.get()`, bound to this login flow.",
        request=s.FlowSerializer,
        responses={
            200: _ok(OPTIONS, "The ceremony and its options."),
            **_errors(
                {
                    400: "`invalid`; `device_error`: the user has no security key.",
                    401: "`invalid_code` (unknown or used challenge), `flow_expired`.",
                    403: "`csrf_failed`.",
                    404: "`not_found`: WebAuthn is not installed.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.FlowSerializer)
        if not webauthn_service.available():
            raise exceptions.NotFound()
        flow = api_flow.LoginFlow.load(data["challenge"])
        ceremony, options = webauthn_service.authentication_options(
            flow.user, request=request._request, bind=f"flow:{flow.flow_id}"
        )
        return Response({"ceremony": ceremony.id, "publicKey": options})


class LoginKeyView(LoginStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Log in: security key step",
        description="Checks the assertion under the same lockout budget as every code; on "
        "success issues the credential and spends the login challenge.",
        request=LoginKeySerializer,
        responses={
            200: _ok(s.CredentialSerializer, "Logged in."),
            **_errors(
                {
                    400: "`invalid`.",
                    401: "`webauthn_refused` (wrong key, bad signature, unknown or used "
                    "ceremony, counter regression: one answer), `invalid_code`, `flow_expired`.",
                    403: "`csrf_failed`.",
                    404: "`not_found`: WebAuthn is not installed.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(LoginKeySerializer)
        if not webauthn_service.available():
            raise exceptions.NotFound()
        flow = api_flow.LoginFlow.load(data["challenge"])
        row = webauthn_service.verify_assertion(
            flow.user,
            data["ceremony"],
            data["credential"],
            bind=f"flow:{flow.flow_id}",
            request=request._request,
        )
        flow.spend()
        cancel_challenge(flow.challenge_id)
        body = issue_credential(request, row.user, factor="webauthn", backend=flow.backend)
        return Response(body)


class PasskeyOptionsView(LoginStepView):
    throttle_classes = [LoginThrottle]

    @extend_schema(
        summary="Passkey sign-in: options",
        description="Starts a passkey sign-in (`PASSKEY_LOGIN`): no username, no password.",
        request=None,
        responses={
            200: _ok(OPTIONS, "The ceremony and its options."),
            **_errors(
                {
                    400: "`invalid`: a secret was sent in the URL.",
                    403: "`csrf_failed`.",
                    404: "`not_found`: passkey sign-in is off.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        request.data  # noqa: B018  (a malformed body is a 400 on every route)
        _enabled(passkey=True)
        ceremony, options = webauthn_service.passkey_options(
            request=request._request, bind="passkey"
        )
        return Response({"ceremony": ceremony.id, "publicKey": options})


class PasskeyLoginView(LoginStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Passkey sign-in",
        description="A discoverable credential with user verification signs the user in "
        "with both factors at once.",
        request=PasskeySerializer,
        responses={
            200: _ok(s.CredentialSerializer, "Logged in."),
            **_errors(
                {
                    400: "`invalid`.",
                    401: "`webauthn_refused` (one answer for every refusal).",
                    403: "`csrf_failed`.",
                    404: "`not_found`: passkey sign-in is off.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(PasskeySerializer)
        _enabled(passkey=True)
        row = webauthn_service.verify_passkey(
            data["ceremony"], data["credential"], bind="passkey", request=request._request
        )
        body = issue_credential(
            request, row.user, factor="passkey", backend=webauthn_service.login_backend()
        )
        return Response(body)
