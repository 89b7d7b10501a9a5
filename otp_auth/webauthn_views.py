"""HTML views for security keys and passkeys (WebAuthn).

The browser side is ``static/otp_auth/webauthn.js`` (no inline script): it asks
``WebAuthnOptionsView`` for the ``publicKey`` options of one ceremony (kept server-side,
bound to this session), runs ``navigator.credentials.create()`` / ``get()``, and posts
the authenticator's JSON answer with the form it belongs to. Registration follows the
factor-change policy like every other factor; an assertion at the second step spends
the same lockout budget as a code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from .conf import app_settings
from .decorators import factor_change_check
from .exceptions import (
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    StepUpRequiredError,
)
from .services import factors as factor_service
from .services import login as login_service
from .services import policy
from .services import step_up as step_up_service
from .services import webauthn as webauthn_service
from .utils import safe_next_url
from .views import FactorRemoveView, pending_cookie

__all__ = [
    "KeyAddView",
    "KeyLoginView",
    "KeyRemoveView",
    "KeyStepUpView",
    "PasskeyLoginView",
    "WebAuthnOptionsView",
]

secret_view: list[Callable[..., Any]] = [
    sensitive_post_parameters("credential"),
    csrf_protect,
    never_cache,
    pending_cookie,
]


def _require_library() -> None:
    if not webauthn_service.available():
        raise Http404("WebAuthn is not installed")


def _json_error(message: Any, status: int, code: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": str(message)}, status=status)


@method_decorator(secret_view, name="dispatch")
class WebAuthnOptionsView(View):
    """``POST purpose=...``: the ``publicKey`` options of a new ceremony, as JSON.

    ``register`` / ``register_passkey`` (a signed-in user, under the factor-change policy),
    ``login`` (the pending second step), ``step_up`` (a verified session) and ``passkey``
    (a sign-in with no user yet, when ``PASSKEY_LOGIN`` is on).
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        _require_library()
        purpose = request.POST.get("purpose", "")
        try:
            if purpose in ("register", "register_passkey"):
                ceremony, options = self._register(request, passkey=purpose.endswith("passkey"))
                webauthn_service.remember(request, "register", ceremony)
            elif purpose == "login":
                ceremony, options = self._login(request)
                webauthn_service.remember(request, "login", ceremony)
            elif purpose == "step_up":
                user = request.user
                if not user.is_authenticated or not login_service.is_session_verified(
                    request, user
                ):
                    return _json_error(_("Sign in first."), 403, "not_authenticated")
                ceremony, options = webauthn_service.authentication_options(
                    user, request=request, bind=webauthn_service.session_bind(request)
                )
                webauthn_service.remember(request, "step_up", ceremony)
            elif purpose == "passkey" and app_settings.PASSKEY_LOGIN:
                ceremony, options = webauthn_service.passkey_options(
                    request=request, bind=webauthn_service.session_bind(request)
                )
                webauthn_service.remember(request, "passkey", ceremony)
            else:
                return _json_error(_("Unknown request."), 400, "invalid")
        except StepUpRequiredError as exc:
            return _json_error(exc.message, 403, exc.code)
        except FlowExpiredError as exc:
            return _json_error(exc.message, 400, exc.code)
        except OTPAuthError as exc:
            return _json_error(exc.message, 400, exc.code)
        return JsonResponse({"publicKey": options})

    def _register(self, request: HttpRequest, *, passkey: bool) -> tuple[Any, dict[str, Any]]:
        user = request.user
        if not app_settings.WEBAUTHN or not user.is_authenticated:
            raise DeviceError()
        if not login_service.is_session_verified(request, user) and policy.has_any_factor(user):
            raise StepUpRequiredError()
        policy.require_fresh_factor(request, user)
        return webauthn_service.registration_options(
            user, request=request, bind=webauthn_service.session_bind(request), passkey=passkey
        )

    def _login(self, request: HttpRequest) -> tuple[Any, dict[str, Any]]:
        pending = login_service.get_pending_login(request)
        if pending is None:
            raise InvalidCodeError("unknown")
        owner = factor_service.pending_user(pending.user_id)
        if owner is None:
            raise InvalidCodeError("unknown")
        return webauthn_service.authentication_options(
            owner, request=request, bind=f"flow:{pending.flow_id}"
        )


class KeyAddForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name (optional)"), max_length=64, required=False)


@method_decorator(secret_view, name="dispatch")
class KeyAddView(View):
    """Register a security key or a passkey (``?passkey=1``)."""

    template_name = "otp_auth/webauthn_add.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        _require_library()
        if not app_settings.WEBAUTHN:
            raise Http404("WebAuthn is off")
        target = resolve_url("otp_auth:webauthn_add") if request.method == "POST" else ""
        refusal = factor_change_check(request, back_to=target)
        return refusal or super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, KeyAddForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = KeyAddForm(request.POST)
        if not form.is_valid():
            return self.render(request, form)
        try:
            webauthn_service.register(
                request.user,
                webauthn_service.recall(request, "register"),
                request.POST.get("credential", ""),
                bind=webauthn_service.session_bind(request),
                name=form.cleaned_data.get("name") or "",
                request=request,
            )
        except FlowExpiredError as exc:
            form.add_error(None, exc.message)
            return self.render(request, form)
        except DeviceError as exc:
            form.add_error(None, exc.message)
            return self.render(request, form)
        messages.success(request, _("Security key added."))
        if not factor_service.has_recovery_codes(request.user):
            return redirect("otp_auth:recovery_codes")
        return redirect("otp_auth:devices")

    def render(self, request: HttpRequest, form: KeyAddForm) -> HttpResponse:
        context = {
            "form": form,
            "passkey": request.GET.get("passkey") == "1" or request.POST.get("passkey") == "1",
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class KeyRemoveView(FactorRemoveView):
    not_found = gettext_lazy("That security key was not found.")
    removed = gettext_lazy("Security key removed.")

    def remove(self, request: HttpRequest, pk: int) -> None:
        webauthn_service.remove_credential(request.user, pk, request=request)


@method_decorator(secret_view, name="dispatch")
class KeyLoginView(View):
    """The second step with a security key or passkey."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        _require_library()
        try:
            pending = login_service.get_pending_login(request)
        except FlowExpiredError as exc:
            login_service.cancel_login(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        owner = factor_service.pending_user(pending.user_id) if pending else None
        if pending is None or owner is None:
            return redirect("otp_auth:login")
        try:
            webauthn_service.verify_assertion(
                owner,
                webauthn_service.recall(request, "login"),
                request.POST.get("credential", ""),
                bind=f"flow:{pending.flow_id}",
                request=request,
            )
        except FlowExpiredError as exc:
            login_service.cancel_login(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        except (InvalidCodeError, RateLimitedError) as exc:
            messages.error(request, str(exc.message))
            return redirect("otp_auth:verify")
        login_service.sign_in(request, owner, backend=pending.backend, factor="webauthn")
        return redirect(pending.next_url or app_settings.LOGIN_REDIRECT_URL)


@method_decorator(secret_view, name="dispatch")
class KeyStepUpView(View):
    """A fresh second factor with a security key or passkey (``?next=`` after)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        _require_library()
        user = request.user
        next_url = safe_next_url(request, request.POST.get("next"))
        if not user.is_authenticated or not login_service.is_session_verified(request, user):
            return redirect("otp_auth:login")
        try:
            step_up_service.complete_step_up_with_key(
                request,
                user,
                webauthn_service.recall(request, "step_up"),
                request.POST.get("credential", ""),
                bind=webauthn_service.session_bind(request),
            )
        except (InvalidCodeError, RateLimitedError, FlowExpiredError) as exc:
            messages.error(request, str(exc.message))
            return redirect(
                resolve_url("otp_auth:step_up") + (f"?next={next_url}" if next_url else "")
            )
        return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)


@method_decorator(secret_view, name="dispatch")
class PasskeyLoginView(View):
    """Sign in with a passkey alone: both factors at once (``PASSKEY_LOGIN``)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        _require_library()
        if not app_settings.PASSKEY_LOGIN:
            raise Http404("Passkey sign-in is off")
        next_url = safe_next_url(request, request.POST.get("next"))
        try:
            row = webauthn_service.verify_passkey(
                webauthn_service.recall(request, "passkey"),
                request.POST.get("credential", ""),
                bind=webauthn_service.session_bind(request),
                request=request,
            )
        except (InvalidCodeError, RateLimitedError, FlowExpiredError) as exc:
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        login_service.sign_in(
            request, row.user, backend=webauthn_service.login_backend(), factor="passkey"
        )
        return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
