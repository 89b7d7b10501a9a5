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

    list_display = (
        "created_at",
        "kind",
        "outcome",
        "user",
        "actor",
        "purpose",
        "channel",
        "destination",
        "ip_address",
        "reason",
    )
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
