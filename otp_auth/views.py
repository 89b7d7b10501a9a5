"""HTML views: validate input, call ``otp_auth.services``, map results to pages.

Every view that takes a password or a code is ``sensitive_post_parameters``,
``csrf_protect`` and ``never_cache``; state-changing views accept POST only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, REDIRECT_FIELD_NAME, login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import Resolver404, resolve
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from .conf import app_settings
from .decorators import factor_change_check
from .exceptions import (
    ChallengeLockedError,
    DeliveryError,
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    OTPAuthError,
    RateLimitedError,
    ResendTooSoonError,
)
from .forms import CodeForm, DeviceAddForm, LoginForm
from .models import Challenge, Device
from .services import challenges as challenge_service
from .services import devices as device_service
from .services import factors as factor_service
from .services import login as login_service
from .services import policy
from .services import step_up as step_up_service
from .services import trusted as trusted_service
from .services.sending import enabled as queued_sends
from .utils import safe_next_url

__all__ = [
    "CancelView",
    "DeviceAddView",
    "DeviceConfirmView",
    "DeviceListView",
    "DeviceRemoveView",
    "LoginView",
    "LogoutView",
    "ResendView",
    "StepUpView",
    "SwitchDeviceView",
    "VerifyView",
]


def pending_cookie(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Set (or delete) the pending-login cookie when the request changed the pending
    login (``services.login``)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        login_service.write_pending_cookie(request, response)
        return response

    return wrapper


secret_view: list[Callable[..., Any]] = [
    sensitive_post_parameters("password", "code"),
    csrf_protect,
    never_cache,
    pending_cookie,
]


def _next_from(request: HttpRequest) -> str:
    candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
    return safe_next_url(request, candidate) or ""


def _refused_code_form(message: Any) -> CodeForm:
    """An empty code form carrying ``message``: a refused code is never echoed back."""
    form = CodeForm()
    form.cleaned_data = {}  # add_error() on an unbound form needs it.
    form.add_error("code", message)
    return form


def _with_next(url_name: str, next_url: str) -> str:
    url = resolve_url(url_name)
    return f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}" if next_url else url


@method_decorator(secret_view, name="dispatch")
class LoginView(View):
    """Step 1: username and password through Django's backends and form."""

    template_name = "otp_auth/login.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        next_url = _next_from(request)
        if request.user.is_authenticated:
            if login_service.is_session_verified(request, request.user):
                return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
            return redirect(_with_next("otp_auth:verify", next_url))
        return self.render(request, LoginForm(request), next_url)

    def post(self, request: HttpRequest) -> HttpResponse:
        next_url = _next_from(request)
        form = LoginForm(request, data=request.POST)
        if not form.is_valid():
            return self.render(request, form, next_url)
        user = form.get_user()
        if trusted_service.trusted_record(request, user) is not None:
            # A remembered browser: the password is enough, but it is no fresh step-up.
            login(request, user)
            login_service.mark_verified(request, user, None, factor="trusted", step_up=False)
            return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
        try:
            pending = login_service.start_login(
                request, user, backend=user.backend, next_url=next_url
            )
        except RateLimitedError as exc:
            # Only after the right password: a wrong one gets the same answer whether the
            # account is locked, unknown or fine.
            logout(request)
            form.add_error(None, exc.message)
            return self.render(request, form, next_url)
        except (DeliveryError, DeviceError):
            logout(request)
            form.add_error(None, DeliveryError.default_message)
            return self.render(request, form, next_url, form_error=True)
        if pending is None:
            # No confirmed device: password-only login; the middleware sends the user to
            # enrollment first when REQUIRE_ENROLLMENT is on.
            login(request, user)
            return redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
        return redirect("otp_auth:verify")

    def render(
        self, request: HttpRequest, form: Any, next_url: str, form_error: bool = False
    ) -> HttpResponse:
        context = {"form": form, "next": next_url, "delivery_error": form_error}
        if app_settings.PASSKEY_LOGIN:
            # Conditional UI: the browser offers passkeys in the username's autofill.
            form.fields["username"].widget.attrs["autocomplete"] = "username webauthn"
        context |= {
            "passkey_login": app_settings.PASSKEY_LOGIN,
            "code_login": app_settings.CODE_LOGIN,
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class VerifyView(View):
    """Step 2: the code. Also resumes a session logged in by another path."""

    template_name = "otp_auth/verify.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            pending = login_service.get_pending_login(request)
        except FlowExpiredError as exc:
            return self._restart(request, exc)
        if pending is None:
            return self._resume(request)
        return self.render(request, pending, CodeForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            user, next_url = login_service.complete_login(request, form.cleaned_data.get("code"))
        except FlowExpiredError as exc:
            return self._restart(request, exc)
        except RateLimitedError as exc:
            pending = login_service.get_pending_login(request)
            if pending is None:
                return redirect("otp_auth:login")
            return self.render(request, pending, _refused_code_form(exc.message))
        except ChallengeLockedError as exc:
            pending = login_service.get_pending_login(request)
            if pending is None:
                return redirect("otp_auth:login")
            return self.render(request, pending, CodeForm(), locked=True, error=exc.message)
        except InvalidCodeError as exc:
            pending = login_service.get_pending_login(request)
            if pending is None:
                return redirect("otp_auth:login")
            return self.render(request, pending, _refused_code_form(exc.message))
        response = redirect(next_url or app_settings.LOGIN_REDIRECT_URL)
        if request.POST.get("remember"):
            trusted_service.remember(request, response, user)
        return response

    def _resume(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect(_with_next("otp_auth:login", _next_from(request)))
        if login_service.is_session_verified(request, user):
            return redirect(_next_from(request) or app_settings.LOGIN_REDIRECT_URL)
        try:
            pending = login_service.start_login(
                request,
                user,
                backend=request.session.get(BACKEND_SESSION_KEY, ""),
                next_url=_next_from(request),
                resume=True,
            )
        except RateLimitedError as exc:
            logout(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        except (DeliveryError, DeviceError):
            logout(request)
            messages.error(request, str(DeliveryError.default_message))
            return redirect("otp_auth:login")
        if pending is None:
            return redirect("otp_auth:device_add")
        return redirect("otp_auth:verify")

    def _restart(self, request: HttpRequest, exc: OTPAuthError) -> HttpResponse:
        logout(request)
        messages.error(request, str(exc.message))
        return redirect("otp_auth:login")

    def render(
        self,
        request: HttpRequest,
        pending: login_service.PendingLogin,
        form: CodeForm,
        *,
        locked: bool = False,
        error: Any = None,
    ) -> HttpResponse:
        page = pending.page
        challenge = None
        if pending.factor == "code" and pending.challenge_id:
            if page.get("channel") and not form.errors and not locked and not queued_sends():
                # The code just sent, as the password step (or the last resend) saw it:
                # the page needs no query. A code that stopped working meanwhile is
                # refused when it is posted, and this page is shown again from the row.
                sent = datetime.fromtimestamp(float(page.get("sent") or 0), tz=UTC)
                challenge = Challenge(
                    channel=page["channel"],
                    destination_masked=page.get("dest", ""),
                    last_sent_at=sent,
                )
            else:
                challenge = Challenge.objects.filter(public_id=pending.challenge_id).first()
        if challenge is None and pending.factor == "code" and not pending.notice:
            if not form.errors:
                return redirect("otp_auth:login")
            # A refused code must look the same whether or not its challenge still exists.
            device = Device.objects.filter(pk=pending.device_id, user_id=pending.user_id).first()
            challenge = Challenge(
                channel=device.default_channel if device else "",
                destination_masked=device.masked_destination if device else "",
            )
        factors = login_service.page_factors(pending)
        current = next((f for f in factors if f.key == pending.factor_key), None)
        others = [
            f
            for f in factors
            if f.kind == "code" and (pending.factor != "code" or f.pk != pending.device_id)
        ]
        if "remember" in page:
            remember = bool(page["remember"])
        else:
            owner = factor_service.pending_user(pending.user_id)
            remember = owner is not None and trusted_service.allowed_for(owner)
        if pending.factor == "recovery":
            form.fields["code"].widget.attrs.update(inputmode="text", autocomplete="off")
        context = {
            "form": form,
            "factor": pending.factor,
            "current_factor": current,
            "challenge": challenge,
            "locked": locked or (challenge is not None and challenge.status == "locked"),
            "locked_message": error,
            "resend_in": challenge_service.resend_available_in(challenge) if challenge else 0,
            "other_devices": others,
            "other_factors": [
                f for f in factors if f.kind != "code" and f.key != pending.factor_key
            ],
            "notice": pending.notice,
            "offer_remember": remember,
            "remember_days": app_settings.TRUSTED_BROWSER_DAYS,
        }
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class ResendView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            login_service.resend_login_code(request)
        except FlowExpiredError as exc:
            logout(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        except ResendTooSoonError as exc:
            messages.warning(
                request,
                _("Please wait %(s)s seconds before asking again.") % {"s": exc.retry_after},
            )
        except DeliveryError:
            logout(request)
            messages.error(request, str(DeliveryError.default_message))
            return redirect("otp_auth:login")
        except OTPAuthError as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(request, _("A new code is on its way."))
        return redirect("otp_auth:verify")


@method_decorator(secret_view, name="dispatch")
class SwitchDeviceView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            factor = request.POST.get("factor") or f"device:{request.POST.get('device', '')}"
            login_service.choose_factor(request, factor)
        except (FlowExpiredError, DeliveryError) as exc:
            logout(request)
            messages.error(request, str(exc.message))
            return redirect("otp_auth:login")
        except OTPAuthError as exc:
            messages.error(request, str(exc.message))
        return redirect("otp_auth:verify")


@method_decorator(secret_view, name="dispatch")
class CancelView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        login_service.cancel_login(request)
        return redirect("otp_auth:login")


@method_decorator(secret_view, name="dispatch")
class LogoutView(View):
    """POST-only logout that also cancels a half-finished login."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        login_service.cancel_login(request)
        return redirect(_next_from(request) or resolve_url("otp_auth:login"))


#: Session key of where a user sent to enroll was going (``next``).
ENROLL_NEXT_SESSION_KEY = "_otp_auth_enroll_next"


def _enrollment_context(request: HttpRequest, form: Any, next_url: str) -> dict[str, Any]:
    """What the enrollment pages show besides the form: whether this is the account's
    first factor (then why the user is here, and a way to sign out instead), and where
    the authenticator app link should come back to."""
    first = not factor_service.has_confirmed_factor(request.user)
    next_url = next_url or request.session.get(ENROLL_NEXT_SESSION_KEY, "")
    return {
        "form": form,
        "next": next_url,
        "first_factor": first,
        "required": first and (bool(next_url) or factor_service.requires_enrollment(request.user)),
        "phone_channels": any(c in ("sms", "voice") for c in app_settings.CHANNELS),
    }


def _device_gate(request: HttpRequest, *, fresh: bool) -> HttpResponse | None:
    """Who may see or manage devices: a verified session, or a user with no factor yet
    (their first enrollment). ``fresh``: this request changes a factor, so the one
    factor-change policy decides (``services.policy``)."""
    user = request.user
    here = request.get_full_path()
    if fresh:
        return factor_change_check(request)
    if not user.is_authenticated:
        return HttpResponseRedirect(_with_next("otp_auth:login", here))
    if not login_service.is_session_verified(request, user) and policy.has_any_factor(user):
        return HttpResponseRedirect(_with_next("otp_auth:verify", here))
    return None


@method_decorator(never_cache, name="dispatch")
class DeviceListView(View):
    template_name = "otp_auth/devices.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        refusal = _device_gate(request, fresh=False)
        if refusal:
            return refusal
        devices = Device.objects.confirmed().for_user(request.user)
        context = {"devices": devices, **factor_service.overview(request, request.user)}
        return render(request, self.template_name, context)


@method_decorator(secret_view, name="dispatch")
class DeviceAddView(View):
    template_name = "otp_auth/device_add.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        refusal = _device_gate(request, fresh=True)
        return refusal or super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, DeviceAddForm())

    def render(self, request: HttpRequest, form: DeviceAddForm) -> HttpResponse:
        next_url = _next_from(request)
        if next_url:
            # Where the user was going when sent here: back there once the device is in.
            request.session[ENROLL_NEXT_SESSION_KEY] = next_url
        return render(request, self.template_name, _enrollment_context(request, form, next_url))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = DeviceAddForm(request.POST)
        if not form.is_valid():
            return self.render(request, form)
        try:
            device_service.add_device(
                request,
                request.user,
                channel=form.cleaned_data["channel"],
                destination=form.cleaned_data["destination"],
                name=form.cleaned_data.get("name", ""),
            )
        except (DeviceError, DeliveryError, RateLimitedError) as exc:
            form.add_error(None, exc.message)
            return self.render(request, form)
        return redirect("otp_auth:device_confirm")


@method_decorator(secret_view, name="dispatch")
class DeviceConfirmView(View):
    template_name = "otp_auth/device_confirm.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        refusal = _device_gate(request, fresh=False)
        return refusal or super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        device = device_service.pending_enrollment(request, request.user)
        if device is None:
            return redirect("otp_auth:device_add")
        context = _enrollment_context(request, CodeForm(), "")
        return render(request, self.template_name, {**context, "device": device})

    def post(self, request: HttpRequest) -> HttpResponse:
        device = device_service.pending_enrollment(request, request.user)
        if device is None:
            return redirect("otp_auth:device_add")
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            device_service.confirm_device(request, request.user, form.cleaned_data.get("code"))
        except ChallengeLockedError as exc:
            messages.error(request, str(exc.message))
            return redirect("otp_auth:device_add")
        except (InvalidCodeError, RateLimitedError) as exc:
            context = _enrollment_context(request, _refused_code_form(exc.message), "")
            return render(request, self.template_name, {**context, "device": device})
        messages.success(request, _("Device added."))
        if not factor_service.has_recovery_codes(request.user):
            # Right after a factor is added: the moment to save a way back in.
            messages.info(request, _("Now save recovery codes, in case you lose this device."))
        next_url = safe_next_url(request, request.session.pop(ENROLL_NEXT_SESSION_KEY, None))
        return redirect(next_url or "otp_auth:devices")


class FactorRemoveView(View):
    """Removing a factor of any kind: the factor-change policy, then the kind's remove
    service (which audits, advances the epoch and tells the user), then the devices page."""

    http_method_names = ["post"]
    not_found: Any = gettext_lazy("That device was not found.")
    removed: Any = gettext_lazy("Device removed.")

    def remove(self, request: HttpRequest, pk: int) -> None:
        device_service.remove_device(request.user, pk, request=request)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        refusal = factor_change_check(request, back_to=resolve_url("otp_auth:devices"))
        if refusal:
            return refusal
        try:
            self.remove(request, pk)
        except DeviceError:
            messages.error(request, self.not_found)
        else:
            messages.success(request, self.removed)
        return redirect("otp_auth:devices")


@method_decorator(secret_view, name="dispatch")
class DeviceRemoveView(FactorRemoveView):
    """Removing a device needs a fresh second factor (``STEP_UP_MAX_AGE``)."""


def step_up_action(next_url: str) -> str:
    """What the step-up page says is being confirmed, from where it leads back to."""
    try:
        match = resolve(urlsplit(next_url).path) if next_url else None
    except Resolver404:
        match = None
    actions = {
        "otp_auth:device_add": _("To add a phone or email address, confirm it is you."),
        "otp_auth:totp_add": _("To add an authenticator app, confirm it is you."),
        "otp_auth:devices": _("To change how you sign in, confirm it is you."),
        "otp_auth:recovery_codes": _("To make new recovery codes, confirm it is you."),
        "otp_auth:password_change": _("To change your password, confirm it is you."),
        "admin:auth_user_password_change": _(
            "To set a user's password in the admin, confirm it is you."
        ),
    }
    return actions.get(match.view_name, "") if match else ""


@method_decorator(secret_view, name="dispatch")
class StepUpView(View):
    """A fresh code before a sensitive action; ``?next=`` says where to go after."""

    template_name = "otp_auth/step_up.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated or not login_service.is_session_verified(request, user):
            return HttpResponseRedirect(_with_next("otp_auth:login", request.get_full_path()))
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, CodeForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        if request.POST.get("factor") == "totp":
            return self._with_totp(request)
        if "send" in request.POST:
            try:
                step_up_service.start_step_up(
                    request,
                    request.user,
                    device_id=request.POST.get("device"),
                    next_url=_next_from(request),
                )
            except (DeviceError, DeliveryError, RateLimitedError) as exc:
                messages.error(request, str(exc.message))
            return self.render(request, CodeForm())
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            next_url = step_up_service.complete_step_up(
                request, request.user, form.cleaned_data.get("code")
            )
        except ChallengeLockedError as exc:
            messages.error(request, str(exc.message))
            request.session.pop("_otp_auth_step_up_pending", None)
            return self.render(request, CodeForm())
        except (InvalidCodeError, RateLimitedError) as exc:
            return self.render(request, _refused_code_form(exc.message))
        return redirect(safe_next_url(request, next_url) or app_settings.LOGIN_REDIRECT_URL)

    def render(self, request: HttpRequest, form: CodeForm) -> HttpResponse:
        pending = step_up_service.pending_step_up(request)
        challenge = (
            Challenge.objects.filter(public_id=pending["challenge_id"]).first() if pending else None
        )
        next_url = _next_from(request) or (pending or {}).get("next_url", "")
        context = {
            "form": form,
            "challenge": challenge if challenge and challenge.status == "pending" else None,
            "devices": Device.objects.confirmed().for_user(request.user),
            "authenticators": factor_service.confirmed_totp_devices(request.user),
            "security_keys": factor_service.webauthn_credentials(request.user),
            "next": next_url,
            "action": step_up_action(next_url),
            "cancel_url": resolve_url("otp_auth:security"),
        }
        return render(request, self.template_name, context)

    def _with_totp(self, request: HttpRequest) -> HttpResponse:
        """A code from an authenticator app: nothing to send, checked at once."""
        form = CodeForm(request.POST)
        form.is_valid()
        try:
            step_up_service.complete_step_up_with_totp(
                request, request.user, form.cleaned_data.get("code")
            )
        except (InvalidCodeError, RateLimitedError) as exc:
            return self.render(request, _refused_code_form(exc.message))
        next_url = _next_from(request)
        return redirect(safe_next_url(request, next_url) or app_settings.LOGIN_REDIRECT_URL)
