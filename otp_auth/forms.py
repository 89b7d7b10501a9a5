"""Forms validate input shape only; codes are judged by the services, which also count
malformed codes as failed attempts."""

from __future__ import annotations

from typing import Any

import phonenumbers
from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .constants import PHONE_CHANNELS, Channel
from .exceptions import InvalidDestinationError, RateLimitedError
from .services import guard
from .services.delivery import numeric_codes_only
from .services.devices import normalize_email, parse_phone_number

__all__ = ["CodeForm", "CodeInput", "DeviceAddForm", "LoginForm"]


class CodeInput(forms.TextInput):
    """A text box for a one-time code that never renders a value: a form shown again (a
    refused code, or another field refused beside a valid code) must not carry the code
    back into the page, where caches, extensions and screenshots keep it."""

    def format_value(self, value: Any) -> str | None:
        return None


class LoginForm(AuthenticationForm):
    """Django's own login form and error messages (no user enumeration), with the
    password checked through ``guard.check_password``, the limits of every login path."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                self.user_cache = guard.check_password(self.request, username, password)
            except RateLimitedError as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from None
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        required=False,
        strip=False,
        widget=CodeInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "maxlength": 32,
                "spellcheck": "false",
                "autocapitalize": "off",
            }
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not numeric_codes_only():
            self.fields["code"].widget.attrs["inputmode"] = "text"


class DeviceAddForm(forms.Form):
    """A phone number or an email address, each in its own field with the right keyboard
    and autofill (``type``, ``inputmode``, ``autocomplete``); the channel says which one
    is used. A ``destination`` value (the older single field) is still read."""

    channel = forms.ChoiceField(label=_("Send codes by"))
    phone = forms.CharField(
        label=_("Phone number"),
        max_length=32,
        required=False,
        help_text=_("In international format, starting with + and the country code."),
        widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "tel"}),
    )
    email = forms.CharField(
        label=_("Email address"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(
            attrs={"autocomplete": "email", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )
    name = forms.CharField(
        label=_("Name (optional)"),
        max_length=64,
        required=False,
        help_text=_('How the device is listed, for example "Work phone".'),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["channel"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(c.value, c.label) for c in Channel if c.value in app_settings.CHANNELS]
        if app_settings.DEFAULT_REGION:
            code = phonenumbers.country_code_for_region(app_settings.DEFAULT_REGION)
            self.fields["phone"].help_text = _(
                "Starting with + and the country code; a +%(code)s number may be typed without it."
            ) % {"code": code}
        if not any(c in PHONE_CHANNELS for c in app_settings.CHANNELS):
            del self.fields["phone"]
        if Channel.EMAIL not in app_settings.CHANNELS:
            del self.fields["email"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        channel = data.get("channel")
        if not channel:
            return data
        field = "phone" if channel in PHONE_CHANNELS else "email"
        value = (data.get(field) or self.data.get("destination") or "").strip()
        if not value:
            message = (
                _("Enter the phone number to send codes to.")
                if field == "phone"
                else _("Enter the email address to send codes to.")
            )
            self.add_error(field if field in self.fields else None, message)
            return data
        try:
            if channel in PHONE_CHANNELS:
                data["destination"] = parse_phone_number(value)
            else:
                data["destination"] = normalize_email(value)
        except InvalidDestinationError as exc:
            error = forms.ValidationError(exc.message, code=exc.code)
            self.add_error(field if field in self.fields else None, error)
        return data
