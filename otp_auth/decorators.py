"""``otp_required``: like ``login_required``, but also demands the second factor."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import urlencode

from .models import Device
from .services.login import is_session_verified
from .services.step_up import has_recent_step_up

__all__ = ["otp_required", "otp_check"]

V = TypeVar("V", bound=Callable[..., HttpResponse])


def otp_check(
    request: HttpRequest, *, if_configured: bool = False, fresh: int | None = None
) -> HttpResponse | None:
    """The redirect that ``otp_required`` would answer with, or ``None`` to proceed."""
    user = request.user
    here = urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
    if not user.is_authenticated:
        return HttpResponseRedirect(f"{resolve_url('otp_auth:login')}?{here}")
    if not is_session_verified(request, user):
        if not Device.objects.confirmed().for_user(user).exists():
            if if_configured:
                return None
            return HttpResponseRedirect(f"{resolve_url('otp_auth:device_add')}?{here}")
        return HttpResponseRedirect(f"{resolve_url('otp_auth:verify')}?{here}")
    if fresh is not None and not has_recent_step_up(request, user, fresh):
        return HttpResponseRedirect(f"{resolve_url('otp_auth:step_up')}?{here}")
    return None


def otp_required(
    view: V | None = None, *, if_configured: bool = False, fresh: int | None = None
) -> Any:
    """Require a logged-in user whose session passed the second factor.

    ``if_configured=True`` lets users without a confirmed device through (password only).
    ``fresh=N`` also demands a second factor within the last N seconds (step-up), for
    sensitive actions.
    """

    def decorator(func: V) -> V:
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refusal = otp_check(request, if_configured=if_configured, fresh=fresh)
            if refusal is not None:
                return refusal
            return func(request, *args, **kwargs)

        return cast(V, wrapper)

    if view is not None:
        return decorator(view)
    return decorator
