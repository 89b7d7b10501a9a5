from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from otp_auth.decorators import otp_required


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/home.html")


@login_required
@otp_required
def protected(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/protected.html")


@login_required(login_url="/plain/login/")
def plain_home(request: HttpRequest) -> HttpResponse:
    """The load test's baseline page: signed in with a password only (DEMO_PLAIN_LOGIN)."""
    return HttpResponse(f"signed in as {request.user.get_username()}")
