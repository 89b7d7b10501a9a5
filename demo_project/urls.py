from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("protected/", views.protected, name="protected"),
    path("account/", include("otp_auth.urls")),
    path("admin/", admin.site.urls),
]

try:
    import rest_framework  # noqa: F401
except ImportError:
    pass
else:
    urlpatterns.append(path("api/", include("otp_auth.api.urls")))
