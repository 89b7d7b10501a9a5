from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView as DjangoLoginView
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from otp_auth.decorators import otp_required


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"home {request.user.get_username()}")


@login_required
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"private {request.user.get_username()}")


@otp_required
def strict(request: HttpRequest) -> HttpResponse:
    return HttpResponse("strict")


@otp_required(fresh=300)
def sensitive(request: HttpRequest) -> HttpResponse:
    return HttpResponse("sensitive")


def public(request: HttpRequest) -> HttpResponse:
    return HttpResponse("public")


urlpatterns = [
    path("home/", home, name="home"),
    path("private/", private, name="private"),
    path("strict/", strict, name="strict"),
    path("sensitive/", sensitive, name="sensitive"),
    path("public/", public, name="public"),
    # A second, password-only login route, as a site might have: the middleware must
    # still demand the second factor from sessions it creates.
    path(
        "plain-login/",
        DjangoLoginView.as_view(template_name="otp_auth/login.html"),
        name="plain_login",
    ),
    path("account/", include("otp_auth.urls")),
    path("admin/", admin.site.urls),
]

try:
    import rest_framework  # noqa: F401
except ImportError:
    pass
else:
    urlpatterns.append(path("api/", include("otp_auth.api.urls")))
