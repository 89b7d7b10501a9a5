from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

from otp_auth.password_reset_views import django_password_reset_urls

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("protected/", views.protected, name="protected"),
    path("account/", include("otp_auth.urls")),
    path("admin/", admin.site.urls),
    # Django's names (password_reset, admin_password_reset) lead to the reset by code.
    *django_password_reset_urls(),
]

if settings.DEMO_PLAIN_LOGIN:
    urlpatterns += [
        path(
            "plain/login/",
            LoginView.as_view(template_name="demo/plain_login.html", next_page="/plain/home/"),
            name="plain_login",
        ),
        path("plain/home/", views.plain_home, name="plain_home"),
    ]

try:
    import rest_framework  # noqa: F401
except ImportError:
    pass
else:
    urlpatterns.append(path("api/", include("otp_auth.api.urls")))
