"""API routes. Include with ``path("api/", include("otp_auth.api.urls"))``."""

from __future__ import annotations

from django.urls import path

from ..http_guard import guard_patterns
from . import enrollment, password_reset, views, webauthn
from .schema import SchemaView

app_name = "otp_auth_api"

urlpatterns = [
    path("csrf/", views.CSRFView.as_view(), name="csrf"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.VerifyView.as_view(), name="verify"),
    path("login/resend/", views.ResendView.as_view(), name="resend"),
    path("login/switch/", views.SwitchView.as_view(), name="switch"),
    path("login/cancel/", views.CancelView.as_view(), name="cancel"),
    path("me/", views.MeView.as_view(), name="me"),
    path("devices/", views.DeviceListView.as_view(), name="devices"),
    path("devices/confirm/", views.DeviceConfirmView.as_view(), name="device_confirm"),
    path("devices/<str:pk>/remove/", views.DeviceRemoveView.as_view(), name="device_remove"),
    path("step-up/", views.StepUpView.as_view(), name="step_up"),
    path(
        "login/webauthn/options/",
        webauthn.LoginKeyOptionsView.as_view(),
        name="login_webauthn_options",
    ),
    path("login/webauthn/", webauthn.LoginKeyView.as_view(), name="login_webauthn"),
    path("login/code/", enrollment.CodeLoginView.as_view(), name="code_login"),
    path("login/code/verify/", enrollment.CodeLoginVerifyView.as_view(), name="code_login_verify"),
    path("passkey/options/", webauthn.PasskeyOptionsView.as_view(), name="passkey_options"),
    path("passkey/login/", webauthn.PasskeyLoginView.as_view(), name="passkey_login"),
    path("webauthn/", webauthn.KeyListView.as_view(), name="webauthn_keys"),
    path(
        "webauthn/register/options/",
        webauthn.KeyRegisterOptionsView.as_view(),
        name="webauthn_register_options",
    ),
    path("webauthn/register/", webauthn.KeyRegisterView.as_view(), name="webauthn_register"),
    path("webauthn/<str:pk>/remove/", webauthn.KeyRemoveView.as_view(), name="webauthn_remove"),
    path("authenticators/", enrollment.AuthenticatorListView.as_view(), name="authenticators"),
    path(
        "authenticators/confirm/",
        enrollment.AuthenticatorConfirmView.as_view(),
        name="authenticator_confirm",
    ),
    path(
        "authenticators/<str:pk>/remove/",
        enrollment.AuthenticatorRemoveView.as_view(),
        name="authenticator_remove",
    ),
    path("recovery-codes/", enrollment.RecoveryCodesView.as_view(), name="recovery_codes"),
    path("password-reset/", password_reset.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/verify/",
        password_reset.PasswordResetVerifyView.as_view(),
        name="password_reset_verify",
    ),
    path(
        "password-reset/send/",
        password_reset.PasswordResetSendView.as_view(),
        name="password_reset_send",
    ),
    path(
        "password-reset/complete/",
        password_reset.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    # Last, so a fuzzer that logs out does so after everything else.
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("schema/", SchemaView.as_view(), name="schema"),
]
# A busy database answers 503 on every route (http_guard; bodies are JSON-only here).
urlpatterns = guard_patterns(urlpatterns, api=True)
