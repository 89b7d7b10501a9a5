"""HTML routes. Include with ``path("account/", include("otp_auth.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "otp_auth"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.VerifyView.as_view(), name="verify"),
    path("login/resend/", views.ResendView.as_view(), name="resend"),
    path("login/switch/", views.SwitchDeviceView.as_view(), name="switch"),
    path("login/cancel/", views.CancelView.as_view(), name="cancel"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("devices/", views.DeviceListView.as_view(), name="devices"),
    path("devices/add/", views.DeviceAddView.as_view(), name="device_add"),
    path("devices/confirm/", views.DeviceConfirmView.as_view(), name="device_confirm"),
    path("devices/<int:pk>/remove/", views.DeviceRemoveView.as_view(), name="device_remove"),
    path("step-up/", views.StepUpView.as_view(), name="step_up"),
]
