"""HTML views of sign-in by a one-time code (``CODE_LOGIN``): an identifier, then the code.

The first page answers the same for every identifier ("if an account matches, a code is
on its way") and the code leaves after the response; the second judges the code. An
accepted code signs the user in, or (``CODE_LOGIN_SINGLE_FACTOR`` off, the default)
counts as one factor and continues at the second step with another factor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from .conf import app_settings
from .exceptions import (
    ChallengeLockedError,
    DeliveryError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    RateLimitedError,
)
from .forms import CodeForm
from .services import code_login as code_login_service
from .services import login as login_service
from .services import webauthn as webauthn_service
from .services.password_reset import deliver_after
from .utils import safe_next_url
from .views import pending_cookie

__all__ = ["RequestView", "VerifyView"]

SESSION_KEY = "_otp_auth_code_login"
secret_view: list[Callable[..., Any]] = [
    sensitive_post_parameters("code"),
    csrf_protect,
    never_cache,
    pending_cookie,
]


class IdentifierForm(forms.Form):
    identifier = forms.CharField(
        label=gettext_lazy("Username, email address or phone number"), max_length=254
    )


class _Enabled(View):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not app_settings.CODE_LOGIN:
            raise Http404("Sign-in by code is off")
        return super().dispatch(request, *args, **kwargs)


@method_decorator(secret_view, name="dispatch")
class RequestView(_Enabled):
    template_name = "otp_auth/code_login.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name, {"form": IdentifierForm(), "next": self._next()})

    def _next(self) -> str:
        raw = self.request.POST.get("next") or self.request.GET.get("next")
        return safe_next_url(self.request, raw) or ""

    def post(self, request: HttpRequest) -> HttpResponseBase:
        form = IdentifierForm(request.POST)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form, "next": self._next()})
        started = code_login_service.request_code(form.cleaned_data["identifier"], request=request)
        request.session[SESSION_KEY] = {"flow": started.flow, "next": self._next()}
        messages.info(
            request, _("If an account matches, we sent a code to its phone or email address.")
        )
        return deliver_after(redirect("otp_auth:code_login_verify"), started.deliver)


@method_decorator(secret_view, name="dispatch")
class VerifyView(_Enabled):
    template_name = "otp_auth/code_login_verify.html"

    def _state(self) -> dict[str, str] | None:
        raw = self.request.session.get(SESSION_KEY)
        return raw if isinstance(raw, dict) else None

    def get(self, request: HttpRequest) -> HttpResponse:
        if self._state() is None:
            return redirect("otp_auth:code_login")
        return render(request, self.template_name, {"form": CodeForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        state = self._state()
        if state is None:
            return redirect("otp_auth:code_login")
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            outcome = code_login_service.verify_code(
                state.get("flow"), form.cleaned_data.get("code"), request=request
            )
        except (FlowExpiredError, ChallengeLockedError) as exc:
            request.session.pop(SESSION_KEY, None)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:code_login")
        except (InvalidCodeError, RateLimitedError) as exc:
            refused = CodeForm()
            refused.cleaned_data = {}
            refused.add_error("code", exc.message)
            return render(request, self.template_name, {"form": refused})
        request.session.pop(SESSION_KEY, None)
        user, next_url = outcome.user, state.get("next", "")
        backend = webauthn_service.login_backend()
        if outcome.complete:
            login_service.sign_in(request, user, backend=backend, factor="code_login")
            return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
        devices = code_login_service.second_step_devices(user, outcome.device_id)
        try:
            pending = login_service.start_login(
                request, user, backend=backend, next_url=next_url, devices=devices
            )
        except (RateLimitedError, DeliveryError, DeviceError) as exc:
            logout(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        if pending is None:
            messages.error(request, str(code_login_service.no_second_factor().message))
            return redirect("otp_auth:login")
        return redirect("otp_auth:verify")
