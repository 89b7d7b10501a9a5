"""``otp_required``: like ``login_required``, but also demands the second factor."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import urlencode

from .exceptions import StepUpRequiredError
from .services import policy
from .services.factors import has_confirmed_factor
from .services.login import is_session_verified
from .services.step_up import has_recent_step_up

__all__ = ["factor_change_check", "otp_check", "otp_required"]

V = TypeVar("V", bound=Callable[..., HttpResponse])


def _max_age(max_age: int | None, fresh: int | None) -> int | None:
    if max_age is not None and fresh is not None and max_age != fresh:
        raise TypeError("Pass max_age or its alias fresh, not both.")
    value = max_age if max_age is not None else fresh
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TypeError("max_age must be a positive number of seconds.")
    return value


def otp_check(
    request: HttpRequest,
    *,
    if_configured: bool = False,
    max_age: int | None = None,
    fresh: int | None = None,
) -> HttpResponse | None:
    """The redirect that ``otp_required`` would answer with, or ``None`` to proceed."""
    max_age = _max_age(max_age, fresh)
    user = request.user
    here = urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
    if not user.is_authenticated:
        return HttpResponseRedirect(f"{resolve_url('otp_auth:login')}?{here}")
    if not is_session_verified(request, user):
        if not has_confirmed_factor(user):
            if if_configured:
                return None
            return HttpResponseRedirect(f"{resolve_url('otp_auth:device_add')}?{here}")
        return HttpResponseRedirect(f"{resolve_url('otp_auth:verify')}?{here}")
    if max_age is not None and not has_recent_step_up(request, user, max_age):
        return HttpResponseRedirect(f"{resolve_url('otp_auth:step_up')}?{here}")
    return None


def factor_change_check(request: HttpRequest, *, back_to: str = "") -> HttpResponse | None:
    """The redirect that stops an HTML change of a factor, or ``None`` to proceed.

    The decision is ``services.policy.require_fresh_factor``'s, the same as for the API
    and the admin; this only maps it to pages: sign in, pass the second factor, or a
    fresh step-up that comes back to ``back_to`` (default: this page).
    """
    user = request.user
    here = urlencode({REDIRECT_FIELD_NAME: back_to or request.get_full_path()})
    if not user.is_authenticated:
        return HttpResponseRedirect(f"{resolve_url('otp_auth:login')}?{here}")
    if not is_session_verified(request, user) and policy.has_any_factor(user):
        return HttpResponseRedirect(f"{resolve_url('otp_auth:verify')}?{here}")
    try:
        policy.require_fresh_factor(request, user)
    except StepUpRequiredError:
        return HttpResponseRedirect(f"{resolve_url('otp_auth:step_up')}?{here}")
    return None


def otp_required(
    view: V | None = None,
    *,
    if_configured: bool = False,
    max_age: int | None = None,
    fresh: int | None = None,
) -> Any:
    """Require a logged-in user whose session passed the second factor.

    ``if_configured=True`` lets users without a confirmed factor through (password only).
    ``max_age=N`` also demands a second factor within the last N seconds (step-up), for
    sensitive actions; ``fresh=N`` is the same, under its older name.
    """
    max_age = _max_age(max_age, fresh)

    def decorator(func: V) -> V:
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refusal = otp_check(request, if_configured=if_configured, max_age=max_age)
            if refusal is not None:
                return refusal
            return func(request, *args, **kwargs)

        return cast(V, wrapper)

    if view is not None:
        return decorator(view)
    return decorator
