"""API views: validate the body, call ``otp_auth.services``, shape the answer.

The login steps never use the session for the pending login: the password step returns
a signed, short-lived ``challenge`` that the client sends back with the code (see
``otp_auth.services.api_flow``). JSON in, JSON out; secrets in the URL are refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.middleware.csrf import get_token
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..conf import app_settings
from ..exceptions import DeviceError
from ..models import Challenge, Device
from ..services import api_flow, guard, policy
from ..services.devices import confirm_enrollment, normalize_email, parse_phone_number
from ..services.devices import remove_device as remove_device_service
from ..services.factors import user_factors
from . import serializers as s
from .credentials import credential_is_verified, is_session_request, issue_credential
from .exceptions import CSRFFailed, InvalidCredentials, exception_handler
from .parsers import SafeJSONParser
from .permissions import CanManageDevices, IsOTPVerified
from .throttling import LoginThrottle, SendThrottle, VerifyThrottle

__all__ = [
    "CancelView",
    "CSRFView",
    "DeviceConfirmView",
    "DeviceListView",
    "DeviceRemoveView",
    "LoginView",
    "LogoutView",
    "MeView",
    "ResendView",
    "StepUpView",
    "SwitchView",
    "VerifyView",
]

SECRET_QUERY_PARAMS = ("code", "challenge", "password", "token")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _ok(response: Any, description: str) -> OpenApiResponse:
    return OpenApiResponse(response, description=description)


def _errors(described: dict[int, str]) -> dict[int, OpenApiResponse]:
    """Documented error answers, all in the ``ErrorSerializer`` shape."""
    return {
        code: OpenApiResponse(s.ErrorSerializer, description=text)
        for code, text in described.items()
    }


LIMITS = (
    "`rate_limited` or `account_locked` (a send or attempt limit of the service, with "
    "`Retry-After` when it lifts by itself), `throttled` (with `Retry-After`)."
)
LOGIN_STEP_ERRORS = {
    400: "`invalid`: a field is missing, of the wrong type, or sent in the URL.",
    401: "`invalid_code` (wrong, expired, used or unknown challenge: one answer), "
    "`challenge_locked`, `flow_expired`.",
    403: "`csrf_failed`: a session client sent no CSRF token.",
    429: LIMITS,
}


class OTPAPIView(APIView):
    """Common ground: JSON only, one error shape, never cached, and no secret in Django's
    error reports: every handler of an unsafe method is ``sensitive_variables()``, which
    hides the local variables of it and of every call below it (the parsed body, codes,
    passwords, grants) should a request crash."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("post", "put", "patch", "delete"):
            handler = cls.__dict__.get(name)
            if handler is not None and not hasattr(handler, "sensitive_variables"):
                setattr(cls, name, sensitive_variables()(handler))

    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    schema = AutoSchema()
    #: Status of a refused code (see ``exceptions.status_for``).
    refused_status: int = status.HTTP_400_BAD_REQUEST

    def get_exception_handler(self) -> Any:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            leaked = [name for name in SECRET_QUERY_PARAMS if name in request.query_params]
            if leaked:
                message = _("Send this in the request body, never in the URL.")
                raise exceptions.ValidationError({name: [message] for name in leaked})

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    def validated(self, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class LoginStepView(OTPAPIView):
    """The anonymous login steps: the code is the credential, so refusals are 401.

    CSRF is checked whenever a session is involved: always when the credential is a
    session login, and whenever the request carries a session cookie (DRF itself checks
    it only for requests it authenticated by session).
    """

    permission_classes = [AllowAny]
    # Nobody is logged in yet: a stale token a client still sends must not block it.
    authentication_classes: list[Any] = []
    refused_status = status.HTTP_401_UNAUTHORIZED

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method not in SAFE_METHODS and (
            app_settings.API_CREDENTIAL == "session"
            or settings.SESSION_COOKIE_NAME in request.COOKIES
        ):
            try:
                SessionAuthentication().enforce_csrf(request)
            except exceptions.PermissionDenied as exc:
                raise CSRFFailed() from exc
        super().initial(request, *args, **kwargs)


def _login_challenge(flow: api_flow.LoginFlow, challenge: Challenge | None) -> dict[str, Any]:
    factors = user_factors(flow.user_id)
    current = next((f for f in factors if f.key == flow.factor), None)
    sent = challenge if flow.kind == "code" else None
    body: dict[str, Any] = {
        "challenge": flow.token,
        "factor": flow.factor,
        "kind": flow.kind,
        "label": current.label if current else "",
        "channel": None,
        "destination": None,
        "expires_at": None,
        "resend_available_at": None,
        "resends_left": None,
        "factors": [f for f in factors if f.key != flow.factor],
        "notice": flow.notice,
    }
    if sent is not None:
        last_sent = sent.last_sent_at or sent.created_at
        body |= {
            "channel": sent.channel,
            "destination": sent.destination_masked,
            "expires_at": sent.expires_at,
            "resend_available_at": last_sent + timedelta(seconds=app_settings.RESEND_COOLDOWN),
            "resends_left": max(app_settings.MAX_RESENDS - (sent.send_count - 1), 0),
        }
    return dict(s.LoginChallengeSerializer(body).data)


def _challenge(challenge: Challenge, **extra: Any) -> dict[str, Any]:
    return {
        "challenge": challenge.public_id,
        "channel": challenge.channel,
        "destination": challenge.destination_masked,
        "expires_at": challenge.expires_at,
        **extra,
    }


class CSRFView(OTPAPIView):
    """Sets the CSRF cookie for browser clients and returns the token."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        summary="Get a CSRF token",
        description="Browser (session) clients send it back in the `X-CSRFToken` header "
        "on every unsafe request, the login steps included.",
        responses={
            200: _ok(
                inline_serializer("CSRFToken", {"csrf_token": serializers.CharField()}),
                "The token; the `csrftoken` cookie is set as well.",
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response({"csrf_token": get_token(request._request)})


class LoginView(LoginStepView):
    throttle_classes = [LoginThrottle]

    @extend_schema(
        summary="Log in: password step",
        description="Checks the username and password with the project's authentication "
        "backends. A user with a second factor gets a `challenge` (202) and no credential: "
        "with their most recently used factor, a code is sent to a device (`kind: code`) "
        "or asked from their authenticator app (`kind: totp`). A user without a second "
        "factor gets a password-only credential (200, `verified: false`), which "
        "`IsOTPVerified` refuses.",
        request=s.LoginSerializer,
        responses={
            202: _ok(s.LoginChallengeSerializer, "A code was sent; no credential yet."),
            200: _ok(s.CredentialSerializer, "A user without a device: password only."),
            **_errors(
                {
                    400: "`invalid`: a field is missing or of the wrong type; "
                    "`device_error`: the account's factors cannot serve a sign-in "
                    "(email codes turned off for it by `EMAIL_CODES_FOR`).",
                    401: "`invalid_credentials`: wrong username or password (one answer).",
                    403: "`csrf_failed`: a session client sent no CSRF token.",
                    429: LIMITS,
                    503: "`delivery_failed`: the code could not be sent.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.LoginSerializer)
        user = guard.check_password(request._request, data["username"], data["password"])
        if user is None:
            raise InvalidCredentials()
        started = api_flow.start_login(user, backend=user.backend, request=request._request)
        if started is None:
            body = issue_credential(request, user, backend=user.backend)
            return Response(body, status=status.HTTP_200_OK)
        return Response(_login_challenge(*started), status=status.HTTP_202_ACCEPTED)


class VerifyView(LoginStepView):
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Log in: code step",
        description="Checks the code (sent code, authenticator app or recovery code, per "
        "the challenge's `kind`). On success issues the credential chosen by "
        "`OTP_AUTH['API_CREDENTIAL']`; the challenge is then used up.",
        request=s.VerifySerializer,
        responses={200: _ok(s.CredentialSerializer, "Logged in."), **_errors(LOGIN_STEP_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.VerifySerializer)
        flow, user, challenge = api_flow.complete_login(
            data["challenge"], data["code"], request=request._request
        )
        body = issue_credential(
            request, user, factor=flow.kind, challenge=challenge, backend=flow.backend
        )
        return Response(body)


class ResendView(LoginStepView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Log in: send the code again",
        description="A new code for the same challenge (`kind: code`); the previous code "
        "stops working. Wrong attempts carry over.",
        request=s.FlowSerializer,
        responses={
            200: _ok(s.LoginChallengeSerializer, "A new code was sent."),
            **_errors(
                {
                    **LOGIN_STEP_ERRORS,
                    400: "`invalid`; `device_error`: nothing was sent (an app or recovery code).",
                    429: f"`resend_too_soon` (with `Retry-After`), `resend_limit`; {LIMITS}",
                    503: "`delivery_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.FlowSerializer)
        flow, challenge = api_flow.resend_login(data["challenge"], request=request._request)
        return Response(_login_challenge(flow, challenge))


class SwitchView(LoginStepView):
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Log in: use another factor",
        description="Switches to another factor from the `factors` list: another device "
        "gets a code (under the resend cooldown and limit; wrong attempts carry over), an "
        "authenticator app or recovery codes need nothing sent. Returns a new `challenge`.",
        request=s.SwitchSerializer,
        responses={
            200: _ok(s.LoginChallengeSerializer, "Switched; a code was sent for a device."),
            **_errors(
                {
                    **LOGIN_STEP_ERRORS,
                    400: "`invalid`; `device_error`: not a factor of this user.",
                    429: f"`resend_too_soon` (with `Retry-After`), `resend_limit`; {LIMITS}",
                    503: "`delivery_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.SwitchSerializer)
        flow, challenge = api_flow.choose_factor(
            data["challenge"], data["factor"], request=request._request
        )
        return Response(_login_challenge(flow, challenge))


class CancelView(LoginStepView):
    @extend_schema(
        summary="Log in: cancel",
        description="The challenge stops accepting codes. Answers 204 for any challenge.",
        request=s.FlowSerializer,
        responses={
            204: _ok(None, "Cancelled, or nothing to cancel."),
            **_errors(
                {400: "`invalid`.", 403: "`csrf_failed`: a session client sent no CSRF token."}
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.FlowSerializer)
        api_flow.cancel_login(data["challenge"])
        return Response(status=status.HTTP_204_NO_CONTENT)


AUTH_ERRORS = {
    401: "`not_authenticated`, `authentication_failed`.",
    403: "`otp_required`: the credential was not issued after the second factor; `csrf_failed`.",
}


class LogoutView(OTPAPIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Log out",
        description="Ends the session, or deletes the DRF token that authenticated the "
        "request. Other credentials (JWTs) cannot be revoked here.",
        request=None,
        responses={
            204: _ok(None, "Logged out."),
            **_errors(
                {
                    400: "`invalid`: a secret was sent in the URL.",
                    401: AUTH_ERRORS[401],
                    403: "`csrf_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        if is_session_request(request):
            logout(request._request)
        else:
            from rest_framework.authtoken.models import Token

            if isinstance(request.auth, Token):
                request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(OTPAPIView):
    permission_classes = [IsOTPVerified]

    @extend_schema(
        summary="The signed-in user",
        description="Requires a credential issued after the second factor (`IsOTPVerified`).",
        responses={200: _ok(s.UserSerializer, "The user."), **_errors(AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"id": str(user.pk), "username": user.get_username()})


def _pk(request: Request) -> Any:
    """The primary key of the request's (authenticated) user."""
    user: Any = request.user
    return user.pk


def _require_fresh_factor(request: Request, proof: dict[str, Any] | None) -> None:
    """The factor-change policy (``services.policy``), as for HTML and the admin: with
    any factor, a code checked just now (``proof``: a step-up challenge's, or one from an
    authenticator app), or a session that passed a second factor within
    ``STEP_UP_MAX_AGE``. A token, however it was issued, is not proof of presence."""
    policy.require_fresh_factor(
        request._request,
        request.user,
        proof=proof,
        session_counts=is_session_request(request),
    )


STEP_UP_ERRORS = (
    "`step_up_required`: get a code from the step-up endpoint and send it as `step_up`."
)
PROOF_ERRORS = "`invalid`; `invalid_code` or `challenge_locked` for the `step_up` code."


class DeviceListView(OTPAPIView):
    permission_classes = [CanManageDevices]

    def get_throttles(self) -> list[Any]:
        return [SendThrottle()] if self.request.method == "POST" else super().get_throttles()

    @extend_schema(
        summary="List devices",
        description="The user's confirmed devices, most recently used first.",
        responses={
            200: _ok(s.DeviceSerializer(many=True), "The devices."),
            **_errors(AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        devices = Device.objects.confirmed().for_user(request.user)
        return Response(s.DeviceSerializer(devices, many=True).data)

    @extend_schema(
        summary="Add a device",
        description="Creates an unconfirmed device and sends it a code; confirm it with "
        "the confirm endpoint. Once the user has a device, adding another needs a fresh "
        "second factor (`step_up`).",
        request=s.DeviceAddSerializer,
        responses={
            202: _ok(s.EnrollmentSerializer, "A code was sent to the new device."),
            **_errors(
                {
                    400: f"{PROOF_ERRORS} `invalid_destination`, `invalid_number`, "
                    "`destination_blocked`, `country_not_allowed`, `device_error`.",
                    401: AUTH_ERRORS[401],
                    403: f"{AUTH_ERRORS[403]} {STEP_UP_ERRORS}",
                    429: LIMITS,
                    503: "`delivery_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.DeviceAddSerializer)
        user = request.user
        if data["channel"] not in app_settings.CHANNELS:
            raise DeviceError()
        # Judge the destination before the step-up code is spent on it.
        if data["channel"] == "email":
            normalize_email(data["destination"])
        else:
            parse_phone_number(data["destination"])
        _require_fresh_factor(request, data.get("step_up"))
        device, challenge = api_flow.start_enrollment(
            user,
            channel=data["channel"],
            destination=data["destination"],
            name=data["name"],
            request=request._request,
        )
        body = _challenge(challenge, device=device)
        return Response(s.EnrollmentSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class DeviceConfirmView(OTPAPIView):
    permission_classes = [CanManageDevices]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Confirm a device",
        description="Checks the code sent to the new device and confirms it. For a "
        "caller whose credential was not verified yet (their first device), the answer "
        "carries a new, verified credential that replaces the old one.",
        request=s.DeviceConfirmSerializer,
        responses={
            200: _ok(s.DeviceConfirmedSerializer, "The device is confirmed."),
            **_errors(
                {
                    400: "`invalid`; `invalid_code` (wrong, expired, used or unknown: one "
                    "answer), `challenge_locked`.",
                    **AUTH_ERRORS,
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.DeviceConfirmSerializer)
        device, challenge = confirm_enrollment(
            request.user, data["challenge"], data["code"], request=request._request
        )
        credential = None
        if not credential_is_verified(request):
            credential = issue_credential(
                request, request.user, factor="code", challenge=challenge, backend=None
            )
        body = {"device": device, "credential": credential}
        return Response(s.DeviceConfirmedSerializer(body).data)


class DeviceRemoveView(OTPAPIView):
    permission_classes = [IsOTPVerified]
    throttle_classes = [VerifyThrottle]

    @extend_schema(
        summary="Remove a device",
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="The device id.")
        ],
        description="Needs a fresh second factor: a `step_up` code, or a session that "
        "passed one within `STEP_UP_MAX_AGE`.",
        request=s.DeviceRemoveSerializer,
        responses={
            204: _ok(None, "Removed."),
            **_errors(
                {
                    400: PROOF_ERRORS,
                    401: AUTH_ERRORS[401],
                    403: f"{AUTH_ERRORS[403]} {STEP_UP_ERRORS}",
                    404: "`not_found`: no such device on this account.",
                    429: LIMITS,
                }
            ),
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        data = self.validated(s.DeviceRemoveSerializer)
        # Any path segment reaches this view, so a bad id is a JSON 404 like a missing one.
        device_id = int(pk) if pk.isascii() and pk.isdigit() else 0
        if not 0 < device_id <= s.MAX_ID or not (
            Device.objects.for_user(request.user).filter(pk=device_id).exists()
        ):
            raise exceptions.NotFound()
        _require_fresh_factor(request, data.get("step_up"))
        try:
            remove_device_service(request.user, device_id, request=request._request)
        except DeviceError as exc:  # removed meanwhile
            raise exceptions.NotFound() from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class StepUpView(OTPAPIView):
    permission_classes = [IsOTPVerified]
    throttle_classes = [SendThrottle]

    @extend_schema(
        summary="Send a step-up code",
        description="Sends a code for a sensitive change (adding or removing a device). "
        "Send its `challenge` and the code as `step_up` with that request.",
        request=s.StepUpSerializer,
        responses={
            202: _ok(s.StepUpChallengeSerializer, "A code was sent."),
            **_errors(
                {
                    400: "`invalid`; `device_error`: no such confirmed device.",
                    **AUTH_ERRORS,
                    429: LIMITS,
                    503: "`delivery_failed`.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.validated(s.StepUpSerializer)
        challenge = api_flow.start_step_up(
            request.user, device_id=data.get("device"), request=request._request
        )
        body = s.StepUpChallengeSerializer(_challenge(challenge)).data
        return Response(body, status=status.HTTP_202_ACCEPTED)
