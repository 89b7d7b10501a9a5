"""HTML routes. Include with ``path("account/", include("otp_auth.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import code_login_views, factor_views, password_reset_views, views, webauthn_views, webhooks
from .http_guard import guard_patterns

app_name = "otp_auth"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.VerifyView.as_view(), name="verify"),
    path("login/resend/", views.ResendView.as_view(), name="resend"),
    path("login/switch/", views.SwitchDeviceView.as_view(), name="switch"),
    path("login/cancel/", views.CancelView.as_view(), name="cancel"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", factor_views.AccountSecurityView.as_view(), name="security"),
    path("devices/", views.DeviceListView.as_view(), name="devices"),
    path("devices/add/", views.DeviceAddView.as_view(), name="device_add"),
    path("devices/confirm/", views.DeviceConfirmView.as_view(), name="device_confirm"),
    path("devices/<int:pk>/remove/", views.DeviceRemoveView.as_view(), name="device_remove"),
    path("step-up/", views.StepUpView.as_view(), name="step_up"),
    path("authenticator/add/", factor_views.TOTPAddView.as_view(), name="totp_add"),
    path(
        "authenticator/<int:pk>/remove/",
        factor_views.TOTPRemoveView.as_view(),
        name="totp_remove",
    ),
    path("recovery-codes/", factor_views.RecoveryCodesView.as_view(), name="recovery_codes"),
    path(
        "browsers/forget/",
        factor_views.TrustedBrowserForgetView.as_view(),
        name="trusted_forget_all",
    ),
    path(
        "browsers/<int:pk>/forget/",
        factor_views.TrustedBrowserForgetView.as_view(),
        name="trusted_forget",
    ),
    path(
        "sessions/end-others/",
        factor_views.EndOtherSessionsView.as_view(),
        name="end_other_sessions",
    ),
    path("password/", factor_views.PasswordChangeView.as_view(), name="password_change"),
    path("password-reset/", password_reset_views.RequestView.as_view(), name="password_reset"),
    path(
        "password-reset/code/",
        password_reset_views.VerifyView.as_view(),
        name="password_reset_verify",
    ),
    path(
        "password-reset/new/",
        password_reset_views.NewPasswordView.as_view(),
        name="password_reset_new",
    ),
    path(
        "password-reset/send/",
        password_reset_views.SendCodeView.as_view(),
        name="password_reset_send",
    ),
    path(
        "webauthn/options/", webauthn_views.WebAuthnOptionsView.as_view(), name="webauthn_options"
    ),
    path("security-keys/add/", webauthn_views.KeyAddView.as_view(), name="webauthn_add"),
    path(
        "security-keys/<int:pk>/remove/",
        webauthn_views.KeyRemoveView.as_view(),
        name="webauthn_remove",
    ),
    path("login/webauthn/", webauthn_views.KeyLoginView.as_view(), name="webauthn_login"),
    path("login/passkey/", webauthn_views.PasskeyLoginView.as_view(), name="passkey_login"),
    path("step-up/webauthn/", webauthn_views.KeyStepUpView.as_view(), name="webauthn_step_up"),
    path("login/code/", code_login_views.RequestView.as_view(), name="code_login"),
    path("login/code/verify/", code_login_views.VerifyView.as_view(), name="code_login_verify"),
    path("webhooks/<str:alias>/", webhooks.delivery_status, name="webhook"),
    path("webhooks/<str:alias>/<str:token>/", webhooks.delivery_status, name="webhook_token"),
]
# What the signed-out and the half-signed-in need (Django's LoginRequiredMiddleware lets
# them through); the pages of a signed-in user stay behind it.
ANONYMOUS_URL_NAMES = frozenset(
    {
        "login",
        "verify",
        "resend",
        "switch",
        "cancel",
        "logout",
        "password_reset",
        "password_reset_verify",
        "password_reset_new",
        "password_reset_send",
        "webhook",
        "webhook_token",
        "webauthn_options",
        "webauthn_login",
        "passkey_login",
        "code_login",
        "code_login_verify",
    }
)
# Undecodable bodies answer 400 and a busy database 503 on every route (http_guard).
urlpatterns = guard_patterns(urlpatterns, anonymous=ANONYMOUS_URL_NAMES)
