"""A URLconf that routes DRF's password-only token view next to the API (for checks)."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.authtoken.views import ObtainAuthToken, obtain_auth_token


class CustomObtainToken(ObtainAuthToken):
    pass


urlpatterns = [
    path("api/", include("otp_auth.api.urls")),
    path("nested/", include([path("token/", obtain_auth_token)])),
    path("custom-token/", CustomObtainToken.as_view()),
]
