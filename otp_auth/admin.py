"""Admin: a read-only audit of challenges and a device list. Hashes are never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .exceptions import StepUpRequiredError
from .models import (
    AuditEvent,
    Challenge,
    DeliveryAttempt,
    Device,
    Lockout,
    RecoveryCodeSet,
    TOTPDevice,
    TrustedBrowser,
)
from .services import lockout, policy, recovery
from .services.factors import remove_factor


def _user_search_fields() -> tuple[str, ...]:
    user_model = get_user_model()
    fields = {f"user__{user_model.USERNAME_FIELD}"}
    email_field = getattr(user_model, "EMAIL_FIELD", None)
    if email_field:
        fields.add(f"user__{email_field}")
    return tuple(sorted(fields))


class DeliveryAttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    """Each provider tried for a challenge and what the vendor reported since. No
    destination, code or credential is stored on these rows."""

    model = DeliveryAttempt
    fields = (
        "created_at",
        "provider_alias",
        "provider_name",
        "outcome",
        "error_code",
        "vendor_code",
        "http_status",
        "detail",
        "reference",
        "status",
        "raw_status",
        "status_updated_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Challenge)
class ChallengeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Audit trail: every challenge, its outcome, where it went (masked) and from where."""

    list_display = (
        "created_at",
        "user",
        "purpose",
        "channel",
        "destination_masked",
        "status",
        "attempts_display",
        "send_count",
        "delivery_status",
        "ip_address",
    )
    list_filter = ("purpose", "channel", "status", "provider_alias", "created_at")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    search_fields = _user_search_fields()
    # code_hash is deliberately absent: it is never shown, not even read-only.
    fields = (
        "user",
        "device",
        "purpose",
        "channel",
        "provider_alias",
        "destination_masked",
        "status",
        "attempts",
        "max_attempts",
        "send_count",
        "created_at",
        "last_sent_at",
        "expires_at",
        "consumed_at",
        "ip_address",
        "user_agent",
        "provider_reference",
        "delivery_status",
        "failure_reason",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = None

    @admin.display(description=_("attempts"))
    def attempts_display(self, obj: Challenge) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FactorAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Deleting a factor here goes through the services like any other path: the
    factor-change policy applies to the staff member (a fresh second factor of their
    own), the audit row names them as the actor, the user's security epoch advances (their
    sessions, tokens and flows end) and the user is told."""

    def _refusal(self, request: HttpRequest, back_to: str) -> HttpResponse | None:
        try:
            policy.require_fresh_factor(request, request.user)
        except StepUpRequiredError:
            query = urlencode({REDIRECT_FIELD_NAME: back_to})
            return HttpResponseRedirect(f"{resolve_url('otp_auth:step_up')}?{query}")
        return None

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        refusal = self._refusal(request, request.get_full_path())
        return refusal or super().delete_view(request, object_id, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and request.POST.get("action") == "delete_selected":
            refusal = self._refusal(request, request.get_full_path())
            if refusal:
                return refusal
        return super().changelist_view(request, extra_context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.remove(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset.select_related("user"):
            self.remove(request, obj)

    def remove(self, request: HttpRequest, obj: Any) -> None:
        remove_factor(obj, request=request, actor=request.user)


@admin.register(Device)
class DeviceAdmin(FactorAdmin):
    """Staff can review and revoke (delete) devices; they cannot add or edit one."""

    list_display = ("user", "masked_destination", "name", "channels", "confirmed", "last_used_at")
    list_filter = ("confirmed", "created_at")
    list_select_related = ("user",)
    search_fields = _user_search_fields()
    fields = (
        "user",
        "name",
        "masked_destination",
        "channels",
        "confirmed",
        "created_at",
        "last_used_at",
    )
    readonly_fields = fields

    @admin.display(description=_("destination"))
    def masked_destination(self, obj: Device) -> str:
        return obj.masked_destination

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReviewOnly(FactorAdmin):
    """Staff can review and revoke (delete) these rows; nobody can add or edit one, and
    no seed, hash or code is ever shown."""

    list_select_related = ("user",)
    search_fields = _user_search_fields()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(_ReviewOnly):
    list_display = (
        "user",
        "name",
        "confirmed",
        "algorithm",
        "digits",
        "created_at",
        "last_used_at",
    )
    list_filter = ("confirmed", "algorithm", "created_at")
    # encrypted_seed and last_step are deliberately absent.
    fields = (
        "user",
        "name",
        "confirmed",
        "algorithm",
        "digits",
        "period",
        "created_at",
        "last_used_at",
    )
    readonly_fields = fields


@admin.register(RecoveryCodeSet)
class RecoveryCodeSetAdmin(_ReviewOnly):
    list_display = ("user", "created_at", "unused_codes", "last_used_at")
    fields = ("user", "created_at", "unused_codes", "last_used_at")
    readonly_fields = fields

    def remove(self, request: HttpRequest, obj: Any) -> None:
        recovery.delete_codes(obj.user, request=request, actor=request.user)

    def get_queryset(self, request: HttpRequest) -> Any:
        unused = Count("codes", filter=Q(codes__used_at__isnull=True))
        return super().get_queryset(request).annotate(unused_count=unused)

    @admin.display(description=_("unused codes"))
    def unused_codes(self, obj: RecoveryCodeSet) -> int:
        return int(getattr(obj, "unused_count", 0))


@admin.register(TrustedBrowser)
class TrustedBrowserAdmin(_ReviewOnly):
    """Forgetting a remembered browser is no factor change: a plain delete."""

    def _refusal(self, request: HttpRequest, back_to: str) -> HttpResponse | None:
        return None

    def remove(self, request: HttpRequest, obj: Any) -> None:
        obj.delete()

    list_display = ("user", "user_agent", "created_at", "expires_at", "last_used_at")
    list_filter = ("created_at", "expires_at")
    fields = ("user", "user_agent", "created_at", "expires_at", "last_used_at")
    readonly_fields = fields


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The audit log, read-only: nobody can add, edit or delete a row here, not even in
    bulk. Old rows go only through ``otp_auth_cleanup`` and its retention setting."""

    # Five columns fit a 1280 px screen; every field is on the change page.
    list_display = ("created_at", "kind", "outcome", "user", "summary")
    list_display_links = ("created_at", "kind")
    list_filter = ("kind", "outcome", "purpose", "channel", "created_at")
    date_hierarchy = "created_at"
    list_select_related = ("user", "actor")
    search_fields = (*_user_search_fields(), "=ip_address", "=reason")
    show_full_result_count = False  # no COUNT(*) over a large log on every page
    fields = (
        "created_at",
        "kind",
        "outcome",
        "user",
        "actor",
        "challenge_pk",
        "purpose",
        "channel",
        "destination",
        "ip_address",
        "user_agent",
        "reason",
        "detail",
    )
    readonly_fields = fields
    actions = None

    @admin.display(description=_("details"))
    def summary(self, obj: AuditEvent) -> str:
        """Channel and destination, address and reason, in one short column."""
        parts = [
            " ".join(
                p for p in (obj.get_channel_display() if obj.channel else "", obj.destination) if p
            ),
            obj.ip_address or "",
            obj.reason,
        ]
        if obj.actor_id is not None:
            parts.append(str(_("by %(actor)s") % {"actor": obj.actor}))
        return " · ".join(p for p in parts if p) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LockStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("locked", _("Locked now")),
            ("disabled", _("Disabled")),
            ("counting", _("Refused codes, not locked")),
        ]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "locked":
            return queryset.filter(locked_until__gt=now, disabled_at__isnull=True)
        if self.value() == "disabled":
            return queryset.filter(disabled_at__isnull=False)
        if self.value() == "counting":
            return queryset.filter(failures__gt=0, disabled_at__isnull=True).exclude(
                locked_until__gt=now
            )
        return queryset


@admin.register(Lockout)
class LockoutAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Who is locked out of their second factor, why (their recent events) and until
    when. The only change staff can make is the audited "unlock" action."""

    list_display = ("user", "state", "failures", "last_failure_at", "locked_until", "disabled_at")
    list_filter = (LockStateFilter,)
    list_select_related = ("user",)
    search_fields = _user_search_fields()
    fields = (
        "user",
        "state",
        "failures",
        "last_failure_at",
        "locked_until",
        "disabled_at",
        "recent_events",
    )
    readonly_fields = fields
    actions = ["unlock"]
    recent_event_count = 20
    change_form_template = "admin/otp_auth/lockout/change_form.html"

    def get_urls(self) -> list[Any]:
        from django.urls import path

        urls = [
            path(
                "<path:object_id>/unlock/",
                self.admin_site.admin_view(self.unlock_view),
                name="otp_auth_lockout_unlock",
            ),
        ]
        return urls + super().get_urls()

    def unlock_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The "Unlock" button of the change page: POST only, with the unlock permission,
        audited like the list action."""
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import get_object_or_404

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_unlock_permission(request):
            raise PermissionDenied
        state = get_object_or_404(Lockout, pk=object_id)
        if lockout.unlock(state, actor=request.user, request=request, reason="admin"):
            self.message_user(request, _("Unlocked %(user)s.") % {"user": state.user})
        else:
            self.message_user(request, _("%(user)s was not locked.") % {"user": state.user})
        from django.urls import reverse

        opts = Lockout._meta
        name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change"
        return HttpResponseRedirect(reverse(name, args=[state.pk]))

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        obj = kwargs.get("obj")
        context["can_unlock"] = (
            obj is not None
            and self.has_unlock_permission(request)
            and bool(obj.failures or obj.locked_until or obj.disabled_at)
        )
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description=_("state"))
    def state(self, obj: Lockout) -> str:
        if obj.disabled_at is not None:
            return str(_("Disabled: an administrator must unlock"))
        if obj.locked_until is not None and obj.locked_until > timezone.now():
            return str(_("Locked"))
        return str(_("Not locked"))

    @admin.display(description=_("recent events"))
    def recent_events(self, obj: Lockout) -> str:
        """The user's latest audit events: the refused codes and limits behind a lock."""
        events = AuditEvent.objects.filter(user_id=obj.user_id).order_by("-created_at", "-pk")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.created_at,
                    e.get_kind_display(),
                    e.reason,
                    e.channel,
                    e.destination,
                    e.ip_address or "",
                )
                for e in events[: self.recent_event_count]
            ),
        )
        return format_html("<table>{}</table>", rows) if rows else "-"

    @admin.action(description=_("Unlock the selected users' second factor"), permissions=["unlock"])
    def unlock(self, request: HttpRequest, queryset: Any) -> None:
        count = sum(
            lockout.unlock(state, actor=request.user, request=request, reason="admin")
            for state in queryset
        )
        self.message_user(
            request,
            ngettext("Unlocked %(count)d user.", "Unlocked %(count)d users.", count)
            % {"count": count},
        )

    def has_unlock_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("otp_auth.unlock_lockout"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OTPUserAdminMixin:
    """Mix into a ``UserAdmin``: its change page shows the user's two-factor status and
    factors, and its password change form needs a fresh second factor of the staff
    member (the factor-change policy, as for every other path). ``install_user_admin``
    mixes it into whatever ``UserAdmin`` the site registered."""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if obj is not None:
            fieldsets.append((_("Two-factor authentication"), {"fields": ("otp_factors",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return (*fields, "otp_factors") if obj is not None else fields

    @admin.display(description=_("second factors"))
    def otp_factors(self, obj: Any) -> str:
        from .services.factors import confirmed_totp_devices

        devices = list(Device.objects.confirmed().filter(user=obj))
        apps = list(confirmed_totp_devices(obj))
        code_set = RecoveryCodeSet.objects.filter(user=obj).first()
        unused = code_set.codes.filter(used_at__isnull=True).count() if code_set else 0
        state = Lockout.objects.filter(user=obj).first()
        items = [str(d.label) for d in devices]
        items += [str(_("Authenticator app: %(name)s") % {"name": a.label}) for a in apps]
        if code_set is not None:
            items.append(
                ngettext("%(n)d unused recovery code", "%(n)d unused recovery codes", unused)
                % {"n": unused}
            )
        if state is not None and state.is_locked():
            items.append(str(_("Second factor locked")))
        status = _("On") if devices or apps else _("Off: password only")
        rows = format_html_join("", "<li>{}</li>", ((item,) for item in items))
        return format_html("<strong>{}</strong><ul>{}</ul>", status, rows) if items else str(status)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        from .decorators import factor_change_check

        refusal = factor_change_check(request)
        return refusal or super().user_change_password(request, id, form_url)  # type: ignore[misc]


def install_user_admin(site: admin.AdminSite | None = None) -> None:
    """Mix ``OTPUserAdminMixin`` into the user model's registered admin class (Django's
    ``UserAdmin`` or the site's own), keeping everything else of it."""
    site = site or admin.site
    user_model = get_user_model()
    current = site._registry.get(user_model)
    if current is None or isinstance(current, OTPUserAdminMixin):
        return
    cls = type(current)
    mixed = type(cls.__name__, (OTPUserAdminMixin, cls), {"__module__": cls.__module__})
    site.unregister(user_model)
    site.register(user_model, mixed)
