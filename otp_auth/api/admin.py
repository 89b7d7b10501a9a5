"""The admin of DRF's tokens, without the keys.

DRF's own ``TokenAdmin`` lists every key in clear: a key that ``otp_auth`` issued after
the second factor *is* a signed-in session, so any staff member who can open that page
could copy one and act as its user. ``install()`` (called from the app's ``ready()`` when
``rest_framework.authtoken`` is installed) replaces it with a list that shows the user,
the creation time and the first characters of the key, with no page, form, search or
filter that reveals or matches a key. Staff can revoke tokens (a bulk action).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.models import Token, TokenProxy

__all__ = ["PREFIX_LENGTH", "OTPTokenAdmin", "install", "masked_key"]

#: Characters of a key shown to staff: enough to tell two tokens apart in a list, far
#: too few to guess the rest (the key holds 128 random bits and a MAC).
PREFIX_LENGTH = 4


def masked_key(key: str) -> str:
    """``"AbCd…"``: the first ``PREFIX_LENGTH`` characters of ``key``."""
    return f"{key[:PREFIX_LENGTH]}…" if key else ""


class OTPTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """DRF's tokens, one row per user, without their keys.

    Only the list exists: no add, change, history or delete page, since each of those
    would print the token's ``str()``, which is its key. Rows are selected by their
    user's id (``TokenProxy.pk``), so the key is not in the page's checkboxes either.
    """

    list_display = ("user", "created", "key_prefix")
    list_display_links = None
    list_filter = ("created",)
    list_select_related = ("user",)
    sortable_by = ("user", "created")
    ordering = ("-created",)
    actions = ["revoke"]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # By user only: searching by key would let staff test guesses of one.
        return [f"user__{get_user_model().USERNAME_FIELD}"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if lookup.split("__", 1)[0] in ("key", "pk"):
            return False  # ?key__startswith= would find a key one character at a time
        return bool(super().lookup_allowed(lookup, value, request))

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> SafeString:
        # Django labels the box with the row's str(), which for a token is its key.
        label = format_html(gettext("Select the token of {}"), obj.user)
        checkbox = forms.CheckboxInput({"class": "action-select", "aria-label": label})
        return checkbox.render(ACTION_CHECKBOX_NAME, str(obj.pk))

    @admin.display(description=_("key"))
    def key_prefix(self, obj: Token) -> str:
        return masked_key(obj.key)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    @admin.action(description=_("Revoke the selected tokens"), permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Delete the selected users' tokens: those clients must sign in again."""
        if request.POST.get("select_across") == "1":
            users = list(queryset.values_list("user_id", flat=True))
        else:
            # The admin filters ``queryset`` by primary key, which for tokens is the key:
            # the rows are identified by user here, so the selection is read directly.
            users = _user_pks(request.POST.getlist(ACTION_CHECKBOX_NAME))
        count, _rows = Token.objects.filter(user_id__in=users).delete()
        self.message_user(
            request,
            ngettext("Revoked %(count)d token.", "Revoked %(count)d tokens.", count)
            % {"count": count},
            messages.SUCCESS,
        )


def _user_pks(values: list[str]) -> list[Any]:
    field = get_user_model()._meta.pk
    assert field is not None
    pks = []
    for value in values:
        try:
            pks.append(field.to_python(value))
        except ValidationError:
            continue
    return pks


def install(site: admin.AdminSite | None = None) -> None:
    """Register ``OTPTokenAdmin`` for DRF's tokens in place of DRF's ``TokenAdmin``.

    DRF's admin module is imported first, so that the admin's autodiscovery, whenever
    it runs, finds it already imported and registers nothing over this one.
    """
    import rest_framework.authtoken.admin  # noqa: F401  (registers DRF's TokenAdmin)

    site = site or admin.site
    if site.is_registered(TokenProxy):
        site.unregister(TokenProxy)
    site.register(TokenProxy, OTPTokenAdmin)
