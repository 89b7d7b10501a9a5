"""``OTPMiddleware``: exposes ``request.user.is_verified()`` and enforces the second factor.

An authenticated session that has not passed the second factor (for example one logged in
through another login view) is sent to the code step on every URL that is not exempt:
``GET``/``HEAD`` requests from browsers are redirected; API views, JSON clients and
other methods get ``403`` with a JSON body ``{"code": "otp_required"}``. Reading the
state costs no query: it lives in the session that ``AuthenticationMiddleware`` already
loaded.

A verified session made under an older account-security epoch (the password, a factor
or "sign out everywhere" changed since) is logged out here on its next request; see
``otp_auth.services.epoch``, which costs no query (and mostly no cache read) on a
verified request. So is a verified session past ``VERIFIED_SESSION_MAX_AGE`` or idle
for longer than ``VERIFIED_SESSION_IDLE_TIMEOUT``, when those are set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.functional import SimpleLazyObject, empty
from django.utils.http import urlencode

from .conf import app_settings
from .services import epoch
from .services.factors import has_confirmed_factor, requires_enrollment
from .services.login import is_session_verified, session_expired
from .utils import safe_next_url

__all__ = ["OTPMiddleware"]

ALWAYS_EXEMPT = frozenset(
    {
        "otp_auth:login",
        "otp_auth:verify",
        "otp_auth:resend",
        "otp_auth:switch",
        "otp_auth:cancel",
        "otp_auth:logout",
        "admin:logout",
        "logout",
        # Password reset by code: for people who cannot sign in, whatever their session.
        "otp_auth:password_reset",
        "otp_auth:password_reset_verify",
        "otp_auth:password_reset_new",
        "otp_auth:password_reset_send",
        "password_reset",
        "admin_password_reset",
        # The DRF API (``otp_auth.api.urls``): its login steps and logout.
        "otp_auth_api:csrf",
        "otp_auth_api:login",
        "otp_auth_api:verify",
        "otp_auth_api:resend",
        "otp_auth_api:switch",
        "otp_auth_api:cancel",
        "otp_auth_api:logout",
        "otp_auth_api:password_reset",
        "otp_auth_api:password_reset_verify",
        "otp_auth_api:password_reset_send",
        "otp_auth_api:password_reset_complete",
    }
)
ENROLL_URL_NAMES = frozenset(
    {
        "otp_auth:device_add",
        "otp_auth:device_confirm",
        "otp_auth:totp_add",
        "otp_auth_api:devices",
        "otp_auth_api:device_confirm",
    }
)


def _attach(request: HttpRequest, user: Any) -> Any:
    if user is not None and user.is_authenticated:
        user.is_verified = partial(is_session_verified, request, user)
    elif user is not None:
        user.is_verified = lambda: False
    return user


def _has_confirmed_device(user: Any) -> bool:
    cached = getattr(user, "_otp_auth_has_device", None)
    if cached is None:
        cached = has_confirmed_factor(user)
        user._otp_auth_has_device = cached
    return bool(cached)


def _static_prefixes() -> list[str]:
    prefixes = []
    for name in ("STATIC_URL", "MEDIA_URL"):
        value = getattr(settings, name, None)
        if value and str(value).startswith("/") and str(value) != "/":
            prefixes.append(str(value))
    return prefixes


def _is_exempt(request: HttpRequest, enrolling: bool) -> bool:
    match = request.resolver_match
    view_name = match.view_name if match else ""
    if view_name in ALWAYS_EXEMPT or view_name in app_settings.EXEMPT_URL_NAMES:
        return True
    if enrolling and view_name in ENROLL_URL_NAMES:
        return True
    path = request.path_info
    return any(path.startswith(p) for p in [*_static_prefixes(), *app_settings.EXEMPT_PATHS])


def _wants_json(request: HttpRequest) -> bool:
    """API clients get a 403 body, not a redirect to an HTML page (DRF views, by duck
    typing so the core never imports DRF, and clients that ask only for JSON)."""
    match = request.resolver_match
    func = match.func if match is not None else None
    view_class = getattr(func, "cls", None) or getattr(func, "view_class", None)
    if view_class is not None and hasattr(view_class, "authentication_classes"):
        return True
    accept = request.headers.get("Accept", "")
    return "json" in accept and "html" not in accept


def _refuse(request: HttpRequest, target: str) -> HttpResponse:
    if request.method in ("GET", "HEAD") and not _wants_json(request):
        query = urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})
        return HttpResponseRedirect(f"{target}?{query}")
    return JsonResponse({"code": "otp_required", "detail": "Second factor required."}, status=403)


def _admin_login_redirect(request: HttpRequest) -> HttpResponse:
    target = safe_next_url(request, request.GET.get(REDIRECT_FIELD_NAME)) or reverse("admin:index")
    query = urlencode({REDIRECT_FIELD_NAME: target})
    return HttpResponseRedirect(f"{reverse('otp_auth:login')}?{query}")


def _decide(request: HttpRequest, user: Any) -> HttpResponse | None:
    """The response that stops this request, or None to let it through."""
    match = request.resolver_match
    if not user.is_authenticated:
        if (
            match is not None
            and match.view_name == "admin:login"
            and app_settings.ADMIN_LOGIN_REDIRECT
            and request.method in ("GET", "HEAD")
        ):
            return _admin_login_redirect(request)
        return None
    if not app_settings.ENFORCE or is_session_verified(request, user):
        return None
    has_device = _has_confirmed_device(user)
    is_admin = match is not None and "admin" in match.namespaces
    if not has_device and not (is_admin or requires_enrollment(user)):
        return None  # Password-only login allowed for users without a device.
    if _is_exempt(request, enrolling=not has_device):
        return None
    if has_device:
        return _refuse(request, reverse("otp_auth:verify"))
    return _refuse(request, reverse("otp_auth:device_add"))


def _resolved(user: Any) -> Any:
    if isinstance(user, SimpleLazyObject):
        if user._wrapped is empty:
            user._setup()
        return user._wrapped
    return user


class OTPMiddleware:
    """Place after ``SessionMiddleware`` and ``AuthenticationMiddleware``.

    ``process_view`` is synchronous on purpose: under ASGI Django runs it in a thread,
    where the lazy ``request.user`` and the device query are safe.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self._wrap(request)
        with epoch.current_request(request):
            return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        self._wrap(request)
        original_auser = request.auser

        async def auser() -> Any:
            return _attach(request, await original_auser())

        request.auser = auser
        with epoch.current_request(request):
            response: Awaitable[Any] = self.get_response(request)
            return await response

    @staticmethod
    def _wrap(request: HttpRequest) -> None:
        if not hasattr(request, "session") or not hasattr(request, "user"):
            raise ImproperlyConfigured(
                "otp_auth.middleware.OTPMiddleware must come after "
                "SessionMiddleware and AuthenticationMiddleware in MIDDLEWARE."
            )
        user = request.user
        request.user = SimpleLazyObject(lambda: _attach(request, _resolved(user)))  # type: ignore[assignment]

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        user = request.user
        if user.is_authenticated and (
            session_expired(request, user) or epoch.session_stale(request, user)
        ):
            logout(request)
            request.user = user = _attach(request, request.user)
        return _decide(request, user)
