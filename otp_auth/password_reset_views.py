"""HTML pages of the password reset by code (see ``otp_auth.services.password_reset``).

Four pages: ask (username, email or phone), the code, a second factor with the new
password, and sending a code to another device for that second factor. The flow lives
in the session: the reset's id until the code is accepted, then, under a new session
key, the grant. No secret ever appears in a URL, the pages send ``Referrer-Policy:
same-origin`` (never a referrer to another site; ``no-referrer`` would make browsers send
``Origin: null`` on the forms' own posts, which Django's CSRF check refuses), and nobody
is logged in at the end.

``django_password_reset_urls()`` gives Django's own URL names (``password_reset``,
``admin_password_reset``) to this flow, so ``{% url 'password_reset' %}`` and the admin's
"Forgotten your password?" link lead here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import RedirectView

from .conf import app_settings
from .constants import Channel
from .exceptions import (
    ChallengeLockedError,
    DeliveryError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    ResendTooSoonError,
)
from .forms import CodeForm, CodeInput
from .models import PasswordReset
from .services import password_reset as reset_service
from .services.factors import Factor

__all__ = [
    "RESET_SESSION_KEY",
    "NewPasswordView",
    "RequestView",
    "SendCodeView",
    "VerifyView",
    "django_password_reset_urls",
]

#: Session key of the flow: ``{"reset": <id>}``, then ``{"grant": <secret>}``.
RESET_SESSION_KEY = "_otp_auth_password_reset"

secret_view = [
    sensitive_post_parameters("identifier", "code", "new_password1", "new_password2"),
    csrf_protect,
    never_cache,
]


class ResetRequestForm(forms.Form):
    identifier = forms.CharField(
        label=gettext_lazy("Username, email address or phone number"),
        max_length=254,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "username",
                "autofocus": True,
                "autocapitalize": "off",
                "spellcheck": "false",
            }
        ),
    )
    channel = forms.ChoiceField(
        label=gettext_lazy("Send the code by"), required=False, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["channel"]
        assert isinstance(field, forms.ChoiceField)
        enabled = [(c.value, c.label) for c in Channel if c.value in app_settings.CHANNELS]
        field.choices = [("", gettext_lazy("The device I used last")), *enabled]
        field.initial = ""


class SecondFactorForm(forms.Form):
    """Which factor backs the reset code, and its code (judged by the service)."""

    factor = forms.ChoiceField(label=gettext_lazy("Second factor"), widget=forms.RadioSelect)
    code = forms.CharField(
        label=gettext_lazy("Code for the second factor"),
        required=False,
        strip=False,
        widget=CodeInput(
            attrs={"autocomplete": "one-time-code", "maxlength": 64, "spellcheck": "false"}
        ),
    )

    def __init__(self, factors: list[Factor], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["factor"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(f.key, _factor_label(f)) for f in factors]


def _factor_label(factor: Factor) -> str:
    if factor.kind == "totp":
        return _("Code from your authenticator app (%(name)s)") % {"name": factor.label}
    if factor.kind == "recovery":
        return _("A recovery code")
    return _("Code sent to %(device)s") % {"device": factor.label}


def _flow(request: HttpRequest, key: str) -> str | None:
    raw = request.session.get(RESET_SESSION_KEY)
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def _restart(request: HttpRequest, message: Any) -> HttpResponse:
    request.session.pop(RESET_SESSION_KEY, None)
    messages.error(request, str(message))
    return redirect("otp_auth:password_reset")


class ResetView(View):
    """Common ground: off with ``PASSWORD_RESET = False``; never a referrer to other sites."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not app_settings.PASSWORD_RESET:
            raise Http404()
        response = self.gate(request) or super().dispatch(request, *args, **kwargs)
        response["Referrer-Policy"] = "same-origin"
        return response

    def gate(self, request: HttpRequest) -> HttpResponseBase | None:
        """A response that stops the request before the handler, or ``None``."""
        return None


@method_decorator(secret_view, name="dispatch")
class RequestView(ResetView):
    """Step 1. The same page follows whether or not an account matched; the code is sent
    after the response has gone out."""

    template_name = "otp_auth/password_reset/request.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name, {"form": ResetRequestForm()})

    def post(self, request: HttpRequest) -> HttpResponseBase:
        form = ResetRequestForm(request.POST)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form})
        started = reset_service.request_reset(
            form.cleaned_data["identifier"],
            channel=form.cleaned_data.get("channel") or "",
            request=request,
        )
        request.session[RESET_SESSION_KEY] = {"reset": started.reset.public_id}
        return reset_service.deliver_after(
            redirect("otp_auth:password_reset_verify"), started.deliver
        )


@method_decorator(secret_view, name="dispatch")
class VerifyView(ResetView):
    """Step 2: the code. Once accepted, the session key changes and the session holds
    the grant instead of the reset's id."""

    template_name = "otp_auth/password_reset/verify.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if _flow(request, "reset") is None:
            return redirect("otp_auth:password_reset")
        return self.render(request, CodeForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        reset_id = _flow(request, "reset")
        if reset_id is None:
            return redirect("otp_auth:password_reset")
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            _reset, grant = reset_service.verify_reset(
                reset_id, form.cleaned_data.get("code"), request=request
            )
        except ChallengeLockedError as exc:
            request.session.pop(RESET_SESSION_KEY, None)
            return self.render(request, CodeForm(), locked=exc.message)
        except (InvalidCodeError, RateLimitedError) as exc:
            refused = CodeForm()
            refused.cleaned_data = {}
            refused.add_error("code", exc.message)
            return self.render(request, refused)
        # The grant is worth a password: a session id fixed before this point must not
        # carry it.
        request.session.cycle_key()
        request.session[RESET_SESSION_KEY] = {"grant": grant}
        return redirect("otp_auth:password_reset_new")

    def render(self, request: HttpRequest, form: CodeForm, locked: Any = None) -> HttpResponse:
        context = {
            "form": form,
            "locked": locked,
            "phone_minutes": max(app_settings.PASSWORD_RESET_PHONE_TTL // 60, 1),
            "email_minutes": max(app_settings.PASSWORD_RESET_EMAIL_TTL // 60, 1),
        }
        return render(request, self.template_name, context)


class GrantedView(ResetView):
    """Pages that need the grant of an accepted code."""

    reset: PasswordReset
    grant: str
    user: Any

    def gate(self, request: HttpRequest) -> HttpResponseBase | None:
        grant = _flow(request, "grant")
        if grant is None:
            return redirect("otp_auth:password_reset")
        try:
            self.reset = reset_service.granted_reset(grant)
        except reset_service.ResetGrantError as exc:
            return _restart(request, exc.message)
        self.grant, self.user = grant, self.reset.user
        return None


@method_decorator(secret_view, name="dispatch")
class NewPasswordView(GrantedView):
    """Step 3: the second factor (when one is asked) and the new password."""

    template_name = "otp_auth/password_reset/new.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, SetPasswordForm(self.user), self._factor_form())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SetPasswordForm(self.user, request.POST)
        factor_form = self._factor_form(request.POST)
        valid = form.is_valid()
        if factor_form is not None and not factor_form.is_valid():
            valid = False
        if not valid:
            return self.render(request, form, factor_form)
        second = None
        if factor_form is not None:
            second = (factor_form.cleaned_data["factor"], factor_form.cleaned_data["code"])
        try:
            reset_service.complete_reset(
                self.grant,
                form.cleaned_data["new_password1"],
                second_factor=second,
                request=request,
            )
        except reset_service.ResetGrantError as exc:
            return _restart(request, exc.message)
        except ValidationError as exc:
            form.add_error("new_password2", exc)
            return self.render(request, form, factor_form)
        except reset_service.NoSecondFactorError:
            return self.render(request, form, None)
        except OTPAuthError as exc:
            if factor_form is None:
                raise
            # The passwords are never echoed back; the code field tells what went wrong.
            factor_form.add_error("code", exc.message)
            return self.render(request, form, factor_form)
        # The grant, and any login this browser had, end here: the next sign-in asks for
        # the new password and the second factor.
        logout(request)
        messages.success(request, _("Your password was changed. Sign in with your new password."))
        return redirect("otp_auth:login")

    def _factor_form(self, data: Any = None) -> SecondFactorForm | None:
        if not reset_service.needs_second_factor(self.reset):
            return None
        factors = reset_service.second_factors(self.reset)
        if not factors:
            return None
        chosen = _flow(self.request, "factor")
        keys = [f.key for f in factors]
        initial = chosen if chosen in keys else keys[0]
        return SecondFactorForm(factors, data, initial={"factor": initial})

    def render(
        self, request: HttpRequest, form: SetPasswordForm[Any], factor_form: Any
    ) -> HttpResponse:
        needed = reset_service.needs_second_factor(self.reset)
        factors = reset_service.second_factors(self.reset) if needed else []
        context = {
            "form": form,
            "factor_form": factor_form,
            "senders": [f for f in factors if f.kind == "code"],
            "blocked": (
                reset_service.NoSecondFactorError().message if needed and not factors else None
            ),
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class SendCodeView(GrantedView):
    """Sends a code to another device of the user, for the second factor."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        key = request.POST.get("factor", "")
        try:
            challenge = reset_service.send_second_code(self.grant, key, request=request)
        except ResendTooSoonError as exc:
            messages.warning(
                request,
                _("Please wait %(s)s seconds before asking again.") % {"s": exc.retry_after},
            )
        except DeliveryError:
            messages.error(request, str(DeliveryError.default_message))
        except OTPAuthError as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(
                request, _("We sent a code to %(dest)s.") % {"dest": challenge.destination_masked}
            )
            request.session[RESET_SESSION_KEY] = {"grant": self.grant, "factor": key}
        return redirect("otp_auth:password_reset_new")


def django_password_reset_urls(route: str = "password-reset/") -> list[URLPattern]:
    """URL patterns named like Django's that lead to this flow: ``password_reset`` (for
    ``{% url 'password_reset' %}`` and ``LoginView`` templates) and
    ``admin_password_reset`` (the admin login's "Forgotten your password?" link).

    Add them to the root URLconf, before ``django.contrib.auth.urls`` if that is
    included too: ``urlpatterns += django_password_reset_urls()``.
    """
    to_flow = RedirectView.as_view(pattern_name="otp_auth:password_reset")
    to_flow.login_required = False  # type: ignore[attr-defined]  # as login_not_required
    return [
        path(route, to_flow, name="password_reset"),
        path(f"{route}admin/", to_flow, name="admin_password_reset"),
    ]
