"""Challenges (one per code sent) and devices (a user's confirmed ways to get codes).

Every hot lookup is by a unique key (``Challenge.public_id``) or by user, so the cost of a
login does not grow with the size of either table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .constants import PHONE_CHANNELS, ChallengeStatus, Channel, Purpose
from .crypto import generate_public_id, mask_email, mask_phone

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Challenge", "Device"]


class DeviceQuerySet(models.QuerySet["Device"]):
    def confirmed(self) -> DeviceQuerySet:
        return self.filter(confirmed=True)

    def for_user(self, user: Any) -> DeviceQuerySet:
        return self.filter(user=user)


class Device(models.Model):
    """A phone number or email address a user proved they control.

    Phone numbers are stored in E.164 (parsed with ``phonenumbers`` before saving).
    Only confirmed devices can receive login codes.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_devices",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    phone_number = models.CharField(_("phone number (E.164)"), max_length=16, blank=True)
    email = models.EmailField(_("email address"), blank=True)
    channels = models.JSONField(_("channels"), default=list)
    confirmed = models.BooleanField(_("confirmed"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        verbose_name = _("OTP device")
        verbose_name_plural = _("OTP devices")
        ordering = ["-last_used_at", "-created_at"]
        indexes = [models.Index(fields=["user", "confirmed"], name="otp_auth_device_user_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(phone_number="") & ~Q(email="")) | (~Q(phone_number="") & Q(email="")),
                name="otp_auth_device_one_destination",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def is_phone(self) -> bool:
        return bool(self.phone_number)

    @property
    def masked_destination(self) -> str:
        """What the UI shows: ``••••1234`` or ``a••••@example.com``."""
        if self.phone_number:
            return mask_phone(self.phone_number)
        return mask_email(self.email)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.masked_destination})" if self.name else self.masked_destination

    @property
    def default_channel(self) -> str:
        if self.channels:
            return str(self.channels[0])
        return Channel.SMS.value if self.phone_number else Channel.EMAIL.value

    def serves(self, channel: str) -> bool:
        if channel in PHONE_CHANNELS:
            return bool(self.phone_number) and channel in self.channels
        return channel == Channel.EMAIL and bool(self.email) and channel in self.channels

    def destination_for(self, channel: str) -> str:
        """The raw destination for a provider. Never shown or logged."""
        return self.phone_number if channel in PHONE_CHANNELS else self.email


class ChallengeQuerySet(models.QuerySet["Challenge"]):
    def pending(self) -> ChallengeQuerySet:
        return self.filter(status=ChallengeStatus.PENDING)


class Challenge(models.Model):
    """One code sent for one purpose. Holds only a keyed hash of the code.

    ``public_id`` (256 random bits) is the only identifier that leaves the server.
    State changes go through ``otp_auth.services``; nothing else writes these rows.
    """

    public_id = models.CharField(
        _("public id"), max_length=64, unique=True, default=generate_public_id, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_challenges",
        verbose_name=_("user"),
    )
    device = models.ForeignKey(
        Device,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="challenges",
        verbose_name=_("device"),
    )
    purpose = models.CharField(_("purpose"), max_length=32, choices=Purpose.choices)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    provider_alias = models.CharField(_("provider"), max_length=64)
    destination_masked = models.CharField(_("destination"), max_length=128)
    code_hash = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=ChallengeStatus.choices,
        default=ChallengeStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)
    max_attempts = models.PositiveSmallIntegerField(_("max attempts"))
    send_count = models.PositiveSmallIntegerField(_("sends"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"))
    consumed_at = models.DateTimeField(_("consumed"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=256, blank=True)
    provider_reference = models.CharField(_("provider reference"), max_length=128, blank=True)
    delivery_status = models.CharField(_("delivery status"), max_length=32, blank=True)
    failure_reason = models.CharField(_("failure reason"), max_length=64, blank=True)

    objects = ChallengeQuerySet.as_manager()

    class Meta:
        verbose_name = _("OTP challenge")
        verbose_name_plural = _("OTP challenges")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "status"], name="otp_auth_chal_user_idx"),
            models.Index(fields=["created_at"], name="otp_auth_chal_created_idx"),
        ]

    def __str__(self) -> str:
        # Never the code or its hash (R13).
        return f"{self.get_purpose_display()} via {self.channel} to {self.destination_masked}"

    def __repr__(self) -> str:
        return f"<Challenge {self.pk} {self.purpose} {self.status}>"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - self.attempts, 0)
