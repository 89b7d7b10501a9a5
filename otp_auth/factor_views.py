"""HTML views for authenticator apps, recovery codes, remembered browsers, other sessions
and the password change, all behind the second factor.

Adding or removing an authenticator, regenerating recovery codes and changing the
password follow the one factor-change policy (``services.policy``, through
``factor_change_check``): with any factor, a fresh second factor (``STEP_UP_MAX_AGE``).
Pages that show a seed or recovery codes are never cached."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.views import PasswordChangeView as DjangoPasswordChangeView
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from .decorators import factor_change_check, otp_check
from .exceptions import InvalidCodeError, RateLimitedError
from .forms import CodeForm
from .models import AuditEvent, Device
from .services import epoch as epoch_service
from .services import factors as factor_service
from .services import notify as notify_service
from .services import recovery as recovery_service
from .services import totp as totp_service
from .services import trusted as trusted_service
from .views import FactorRemoveView

__all__ = [
    "AccountSecurityView",
    "EndOtherSessionsView",
    "PasswordChangeView",
    "RecoveryCodesView",
    "TOTPAddView",
    "TOTPRemoveView",
    "TrustedBrowserForgetView",
]

secret_view = [
    sensitive_post_parameters("password", "code", "old_password", "new_password1", "new_password2"),
    csrf_protect,
    never_cache,
]


def _fresh(request: HttpRequest, *, back_to: str) -> HttpResponse | None:
    """``None`` when the factor-change policy lets this request through; else the
    redirect (a POST comes back to ``back_to``, a page that can be shown with GET)."""
    target = resolve_url(back_to) if request.method == "POST" else ""
    return factor_change_check(request, back_to=target)


class AuthenticatorForm(CodeForm):
    name = forms.CharField(label=gettext_lazy("Name (optional)"), max_length=64, required=False)


Kind = AuditEvent.Kind

#: The security events a user is shown about their own account, in their words.
EVENT_WORDS: dict[tuple[str, str], Any] = {
    (Kind.VERIFIED, "login"): gettext_lazy("Signed in with a second factor"),
    (Kind.VERIFIED, "step_up"): gettext_lazy("Confirmed a sensitive change"),
    (Kind.VERIFIED, "password_reset"): gettext_lazy("Password reset code accepted"),
    (Kind.FAILED, ""): gettext_lazy("Wrong code entered"),
    (Kind.FACTOR_ADDED, ""): gettext_lazy("Sign-in factor added"),
    (Kind.FACTOR_REMOVED, ""): gettext_lazy("Sign-in factor removed"),
    (Kind.ACCOUNT_LOCKED, ""): gettext_lazy("Codes locked after too many wrong ones"),
    (Kind.FACTOR_DISABLED, ""): gettext_lazy("Codes disabled after too many wrong ones"),
    (Kind.UNLOCKED, ""): gettext_lazy("Codes unlocked"),
    (Kind.RESET_COMPLETED, ""): gettext_lazy("Password changed by reset"),
    (Kind.SIGNED_OUT_EVERYWHERE, ""): gettext_lazy("Other sessions signed out"),
}
RECENT_EVENTS = 10


def recent_events(user: Any) -> list[dict[str, Any]]:
    """The user's latest security events that mean something to them."""
    kinds = {kind for kind, _purpose in EVENT_WORDS}
    rows = AuditEvent.objects.filter(user=user, kind__in=kinds).order_by("-created_at", "-pk")
    events = []
    for row in rows[: RECENT_EVENTS * 3]:
        words = EVENT_WORDS.get((row.kind, row.purpose)) or EVENT_WORDS.get((row.kind, ""))
        if words is None:
            continue
        events.append({"what": words, "when": row.created_at, "ip": row.ip_address})
        if len(events) == RECENT_EVENTS:
            break
    return events


@method_decorator(never_cache, name="dispatch")
class AccountSecurityView(View):
    """One page on how the account is protected: factors, recovery codes, remembered
    browsers, recent security events, and the links to change each."""

    template_name = "otp_auth/security.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        from .views import _device_gate

        refusal = _device_gate(request, fresh=False)
        if refusal:
            return refusal
        overview = factor_service.overview(request, request.user)
        devices = list(Device.objects.confirmed().for_user(request.user))
        context = {
            **overview,
            "devices": devices,
            "factor_count": len(devices) + len(overview["authenticators"]),
            "events": recent_events(request.user),
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class TOTPAddView(View):
    """Set up an authenticator app: QR code (drawn here, as inline SVG), the key for typing,
    then a code from the app, which activates it."""

    template_name = "otp_auth/totp_add.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        refusal = _fresh(request, back_to="otp_auth:totp_add")
        return refusal or super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, AuthenticatorForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AuthenticatorForm(request.POST)
        form.is_valid()
        try:
            totp_service.confirm_enrollment(
                request,
                request.user,
                form.cleaned_data.get("code"),
                name=form.cleaned_data.get("name") or "",
            )
        except (InvalidCodeError, RateLimitedError) as exc:
            refused = AuthenticatorForm(initial={"name": form.cleaned_data.get("name")})
            refused.cleaned_data = {}
            refused.add_error("code", exc.message)
            return self.render(request, refused)
        messages.success(request, _("Authenticator app added."))
        if not factor_service.has_recovery_codes(request.user):
            return redirect("otp_auth:recovery_codes")
        return redirect("otp_auth:devices")

    def render(self, request: HttpRequest, form: AuthenticatorForm) -> HttpResponse:
        device = totp_service.start_enrollment(request, request.user)
        setup = totp_service.provisioning(
            device,
            account=request.user.get_username(),
            issuer=totp_service.issuer_name(request),
        )
        user = request.user
        context = {
            "form": form,
            "device": device,
            "setup": setup,
            # Sent here to enroll (the account's first factor): why, and a way out.
            "required": not factor_service.has_confirmed_factor(user)
            and (bool(request.GET.get("next")) or factor_service.requires_enrollment(user)),
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class TOTPRemoveView(FactorRemoveView):
    not_found = gettext_lazy("That authenticator app was not found.")
    removed = gettext_lazy("Authenticator app removed.")

    def remove(self, request: HttpRequest, pk: int) -> None:
        totp_service.remove_totp_device(request.user, pk, request=request)


@method_decorator(secret_view, name="dispatch")
class RecoveryCodesView(View):
    """How many codes are left; a new set (shown once) after a fresh second factor."""

    template_name = "otp_auth/recovery_codes.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        refusal = otp_check(request)
        if refusal:
            return refusal
        return self.render(request, codes=None)

    def post(self, request: HttpRequest) -> HttpResponse:
        refusal = _fresh(request, back_to="otp_auth:recovery_codes")
        if refusal:
            return refusal
        codes = recovery_service.generate_codes(request.user, request=request)
        return self.render(request, codes=codes)

    def render(self, request: HttpRequest, codes: list[str] | None) -> HttpResponse:
        overview = factor_service.overview(request, request.user)
        context = {
            "codes": codes,
            "codes_text": "\n".join(codes or []),
            "recovery_set": overview["recovery_set"],
            "remaining": overview["recovery_remaining"],
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class TrustedBrowserForgetView(View):
    """Forget one remembered browser (``pk``) or all of them."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        refusal = otp_check(request)
        if refusal:
            return refusal
        this_browser = trusted_service.current_record_id(request, request.user)
        if pk is None:
            trusted_service.forget_all(request.user)
            forgot_this = this_browser is not None
            messages.success(request, _("No browser is remembered any more."))
        else:
            forgot_this = pk == this_browser
            if trusted_service.forget(request.user, pk):
                messages.success(request, _("The browser will ask for a code again."))
        response = redirect("otp_auth:devices")
        if forgot_this:
            trusted_service.forget_cookie(response)
        return response


@method_decorator(secret_view, name="dispatch")
class EndOtherSessionsView(View):
    """Sign out every other session of the user; this one stays."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        refusal = otp_check(request)
        if refusal:
            return refusal
        epoch_service.sign_out_everywhere_else(request, request.user)
        messages.success(request, _("Your other sessions were signed out."))
        return redirect("otp_auth:devices")


@method_decorator(never_cache, name="dispatch")
class PasswordChangeView(DjangoPasswordChangeView):
    """Django's password change, behind a fresh second factor.

    Afterwards remembered browsers are forgotten and the user is notified; Django keeps
    this session and ends the others (their session hash no longer matches).
    """

    template_name = "otp_auth/password_change.html"
    success_url = reverse_lazy("otp_auth:devices")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        refusal = _fresh(request, back_to="otp_auth:password_change")
        return refusal or super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        trusted_service.forget_all(self.request.user)
        trusted_service.forget_cookie(response)
        notify_service.notify(self.request.user, "password_changed", request=self.request)
        messages.success(self.request, _("Your password was changed."))
        return response
