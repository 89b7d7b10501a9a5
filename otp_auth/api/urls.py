"""API routes. Include with ``path("api/", include("otp_auth.api.urls"))``."""

from __future__ import annotations

from django.urls import path

from ..http_guard import guard_patterns
from . import password_reset, views
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
