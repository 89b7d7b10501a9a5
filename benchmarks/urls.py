"""Both logins side by side: Django's ``LoginView`` (same template) and otp_auth's."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


@login_required
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"private {request.user.get_username()}")


urlpatterns = [
    path("private/", private, name="private"),
    path(
        "plain/login/",
        LoginView.as_view(template_name="otp_auth/login.html"),
        name="plain_login",
    ),
    path("account/", include("otp_auth.urls")),
]
