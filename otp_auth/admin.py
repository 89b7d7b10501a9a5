"""Admin: a read-only audit of challenges and a device list. Hashes are never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .models import Challenge, Device


def _user_search_fields() -> tuple[str, ...]:
    user_model = get_user_model()
    fields = {f"user__{user_model.USERNAME_FIELD}"}
    email_field = getattr(user_model, "EMAIL_FIELD", None)
    if email_field:
        fields.add(f"user__{email_field}")
    return tuple(sorted(fields))


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


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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
