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
from .useragent import describe

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "AuditEvent",
    "Challenge",
    "DeliveryAttempt",
    "Device",
    "ImportedFactor",
    "Lockout",
    "PasswordReset",
    "RecoveryCode",
    "RecoveryCodeSet",
    "SecurityEpoch",
    "TOTPDevice",
    "TrustedBrowser",
    "WebAuthnCredential",
]


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
    # Which key ``code_hash`` was made under (``otp_auth.crypto.code_key_id``); blank for
    # rows written before key ids were recorded.
    key_id = models.CharField(max_length=16, blank=True, editable=False)
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
    # The login flow this code belongs to ("" outside a login): every send of one flow is
    # judged against the flow's latest challenge (``services.challenges.send_in_flow``).
    flow_id = models.CharField(_("login flow"), max_length=32, blank=True, editable=False)
    # Hosted-verify checks reserved under the row lock and not yet recorded: the vendor is
    # asked with no lock held (see ``services.challenges``). Stale after ``checks_due_by``.
    checks_in_flight = models.PositiveSmallIntegerField(default=0, editable=False)
    checks_due_by = models.DateTimeField(null=True, blank=True, editable=False)
    # A send owed by the task queue (``services.sending``): the ticket its task carries,
    # and where it stands ("queued", "sending" once reserved for a vendor call, "sent",
    # "failed", "dropped" when the challenge closed first). Blank for sends made in the
    # request. A task whose ticket is no longer the row's sends nothing.
    send_ticket = models.CharField(max_length=32, blank=True, editable=False)
    send_state = models.CharField(_("queued send"), max_length=16, blank=True, editable=False)

    objects = ChallengeQuerySet.as_manager()

    class Meta:
        verbose_name = _("OTP challenge")
        verbose_name_plural = _("OTP challenges")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "status"], name="otp_auth_chal_user_idx"),
            models.Index(fields=["created_at"], name="otp_auth_chal_created_idx"),
            models.Index(
                fields=["flow_id", "-created_at"],
                name="otp_auth_chal_flow_idx",
                condition=~models.Q(flow_id=""),
            ),
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


class DeliveryAttempt(models.Model):
    """One hand-over of a challenge's message to one provider, and what became of it.

    A challenge gets one row per provider tried (routing and failover add more) and per
    resend. Delivery-status webhooks update ``status`` through ``reference``. Holds no
    code, no destination and no provider credential.
    """

    ACCEPTED = "accepted"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    OUTCOMES = [
        (ACCEPTED, _("Accepted")),
        (FAILED, _("Failed")),
        (UNKNOWN, _("Unknown (no answer)")),
        (SKIPPED, _("Skipped (circuit open)")),
    ]

    challenge = models.ForeignKey(
        Challenge,
        on_delete=models.CASCADE,
        related_name="delivery_attempts",
        verbose_name=_("challenge"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    provider_alias = models.CharField(_("provider"), max_length=64)
    provider_name = models.CharField(_("vendor"), max_length=32, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=OUTCOMES)
    error_code = models.CharField(_("error"), max_length=64, blank=True)
    vendor_code = models.CharField(_("vendor code"), max_length=32, blank=True)
    detail = models.CharField(_("detail"), max_length=128, blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    reference = models.CharField(_("provider reference"), max_length=128, blank=True)
    status = models.CharField(_("delivery status"), max_length=32, blank=True)
    raw_status = models.CharField(_("vendor status"), max_length=32, blank=True)
    status_updated_at = models.DateTimeField(_("status updated"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["provider_alias", "reference"], name="otp_auth_attempt_ref_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_alias}: {self.outcome} {self.status}".strip()


class AuditEvent(models.Model):
    """One security event: a code issued, sent, accepted or refused, a limit reached, a
    lock placed or lifted, a device added or removed, a password reset.

    Rows are written by the package only and never changed. They hold ids, masked
    destinations and short reason words: never a code, a hash, a secret or a full phone
    number or address. ``otp_auth_cleanup`` deletes them after ``AUDIT_RETENTION_DAYS``.
    """

    class Kind(models.TextChoices):
        CHALLENGE_ISSUED = "challenge_issued", _("Challenge issued")
        CODE_SENT = "code_sent", _("Code sent")
        SEND_FAILED = "send_failed", _("Send failed")
        DELIVERED = "delivered", _("Delivered")
        DELIVERY_FAILED = "delivery_failed", _("Delivery failed")
        VERIFIED = "verified", _("Code accepted")
        FAILED = "failed", _("Code refused")
        EXPIRED = "expired", _("Challenge expired")
        CHALLENGE_LOCKED = "challenge_locked", _("Challenge locked")
        CANCELLED = "cancelled", _("Challenge cancelled")
        RATE_LIMITED = "rate_limited", _("Refused by a limit")
        ACCOUNT_LOCKED = "account_locked", _("Second factor locked")
        FACTOR_DISABLED = "factor_disabled", _("Second factor disabled")
        UNLOCKED = "unlocked", _("Second factor unlocked")
        FACTOR_ADDED = "factor_added", _("Device added")
        FACTOR_REMOVED = "factor_removed", _("Device removed")
        RESET_REQUESTED = "reset_requested", _("Password reset requested")
        RESET_COMPLETED = "reset_completed", _("Password reset completed")
        CODE_LOGIN_REQUESTED = "code_login_requested", _("Sign-in code requested")
        SIGNED_OUT_EVERYWHERE = "signed_out_everywhere", _("Signed out everywhere else")
        CIRCUIT_OPENED = "circuit_opened", _("Provider circuit opened")
        CIRCUIT_CLOSED = "circuit_closed", _("Provider circuit closed")

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("Success")
        FAILURE = "failure", _("Failure")
        BLOCKED = "blocked", _("Blocked")
        INFO = "info", _("Information")

    created_at = models.DateTimeField(_("time"), default=timezone.now, editable=False)
    kind = models.CharField(_("event"), max_length=32, choices=Kind.choices)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="otp_audit_events",
        db_index=False,  # served by the (user, created_at) index
        verbose_name=_("user"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
        help_text=_("Who did it, when not the user: the administrator who unlocked."),
    )
    # A plain number, not a foreign key: audit rows outlive the challenges they describe,
    # and deleting old challenges must not rewrite them.
    challenge_pk = models.PositiveBigIntegerField(_("challenge"), null=True, blank=True)
    purpose = models.CharField(_("purpose"), max_length=32, choices=Purpose.choices, blank=True)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, blank=True)
    destination = models.CharField(_("destination"), max_length=128, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=256, blank=True)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    detail = models.CharField(_("detail"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["created_at"], name="otp_auth_audit_created_idx"),
            models.Index(fields=["user", "created_at"], name="otp_auth_audit_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_outcome_display()})"


class Lockout(models.Model):
    """A user's refused codes in a row, and the lock they led to. One row per user, made
    at the first refused code; a success clears it.

    Kept in the database, not the cache: the count toward the NIST limit of 100 must
    survive restarts and evictions, and verification locks this row so that parallel
    sessions share one budget of guesses.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_lockout",
        verbose_name=_("user"),
    )
    failures = models.PositiveIntegerField(_("refused codes in a row"), default=0)
    last_failure_at = models.DateTimeField(_("last refused code"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    disabled_at = models.DateTimeField(_("disabled since"), null=True, blank=True)
    # The user's hosted-verify checks under way, which new checks count as refusals to
    # come (``services.lockout.refusal``). Stale after ``checks_due_by``.
    checks_in_flight = models.PositiveSmallIntegerField(default=0, editable=False)
    checks_due_by = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("second-factor lockout")
        verbose_name_plural = _("second-factor lockouts")
        ordering = ["-last_failure_at"]
        permissions = [("unlock_lockout", _("Can unlock a user's second factor"))]

    def __str__(self) -> str:
        return str(_("Second factor of %(user)s") % {"user": self.user})

    def is_locked(self, now: datetime | None = None) -> bool:
        """True while a temporary lock runs, or once the codes are disabled."""
        now = now or timezone.now()
        return self.disabled_at is not None or (
            self.locked_until is not None and self.locked_until > now
        )


class TOTPDevice(models.Model):
    """An authenticator app (RFC 6238 TOTP).

    The seed is stored only as a Fernet token (``otp_auth.encryption``), under keys that
    live outside the database. ``last_step`` is the last accepted time step: codes at or
    before it are refused, so an accepted code never works twice. The device serves logins
    only once a code from the app confirmed it. Verification goes through
    ``otp_auth.services.totp``, which locks this row; refused codes count toward the
    user's ``Lockout`` like every other factor's.
    """

    ALGORITHMS = [("sha1", "SHA-1"), ("sha256", "SHA-256"), ("sha512", "SHA-512")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_totp_devices",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    encrypted_seed = models.TextField(editable=False)
    # Which key encrypted the seed (``otp_auth.encryption.seed_key_id``); blank for rows
    # written before key ids were recorded.
    key_id = models.CharField(max_length=16, blank=True, editable=False, db_index=True)
    algorithm = models.CharField(_("algorithm"), max_length=8, choices=ALGORITHMS, default="sha1")
    digits = models.PositiveSmallIntegerField(_("digits"), default=6)
    period = models.PositiveSmallIntegerField(_("seconds per code"), default=30)
    confirmed = models.BooleanField(_("confirmed"), default=False)
    last_step = models.BigIntegerField(_("last accepted time step"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("authenticator app")
        verbose_name_plural = _("authenticator apps")
        ordering = ["-last_used_at", "-created_at"]
        indexes = [models.Index(fields=["user", "confirmed"], name="otp_auth_totp_user_idx")]

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<TOTPDevice {self.pk} confirmed={self.confirmed}>"

    @property
    def label(self) -> str:
        return self.name or str(_("Authenticator app"))


class RecoveryCodeSet(models.Model):
    """A user's current recovery codes. Regenerating replaces every code at once.

    Verification locks this row, so one code used twice at the same moment succeeds once;
    refused codes count toward the user's ``Lockout``.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_recovery_codes",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(_("generated"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # Which key every code of the set is hashed under (``recovery.code_key_id``); blank
    # for sets made before key ids were recorded, until one of their codes is used.
    key_id = models.CharField(max_length=16, blank=True, editable=False, db_index=True)

    class Meta:
        verbose_name = _("recovery code set")
        verbose_name_plural = _("recovery code sets")

    def __str__(self) -> str:
        return str(_("Recovery codes of %(user)s") % {"user": self.user_id})


class RecoveryCode(models.Model):
    """One recovery code, as an HMAC-SHA256 with its own random salt; never the code."""

    code_set = models.ForeignKey(
        RecoveryCodeSet, on_delete=models.CASCADE, related_name="codes", verbose_name=_("set")
    )
    salt = models.CharField(max_length=32, editable=False)
    code_hash = models.CharField(max_length=64, editable=False)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        verbose_name = _("recovery code")
        verbose_name_plural = _("recovery codes")
        ordering = ["pk"]

    def __str__(self) -> str:
        return str(_("used") if self.used_at else _("unused"))

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.pk} used={self.used_at is not None}>"


class TrustedBrowser(models.Model):
    """A browser the user asked to remember, so it skips the second factor for a while.

    The browser holds a signed cookie with a 256-bit random token; only its SHA-256 is
    stored here. ``fingerprint`` binds the record to the user's password and factors when
    it was made: a change to either makes it worthless.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_trusted_browsers",
        verbose_name=_("user"),
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    fingerprint = models.CharField(max_length=64, editable=False)
    user_agent = models.CharField(_("browser"), max_length=256, blank=True)
    created_at = models.DateTimeField(_("remembered since"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("trusted browser")
        verbose_name_plural = _("trusted browsers")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="otp_auth_trusted_exp_idx")]

    def __str__(self) -> str:
        # Shown to the user on the devices page: the product names, never the header.
        return describe(self.user_agent)


class SecurityEpoch(models.Model):
    """The user's account-security epoch: one number that every change to the user's
    credentials or factors advances.

    Everything that vouches for the user (verified sessions, pending logins, API flow
    tokens and credentials, remembered browsers, step-up stamps, reset grants) records
    the epoch it was made under and is refused once it moved. Written only by
    ``otp_auth.services.epoch``; read through the cache, so a verified request costs no
    query.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="otp_security_epoch",
        verbose_name=_("user"),
    )
    value = models.PositiveBigIntegerField(_("epoch"), default=0)
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)
    reason = models.CharField(_("last change"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("security epoch")
        verbose_name_plural = _("security epochs")

    def __str__(self) -> str:
        return str(self.value)


class PasswordReset(models.Model):
    """One password reset by code: the request, the code it sent, and the grant that an
    accepted code turns into.

    A row is written for every request, whether or not an account matched, so that both
    cost the same and get the same answer; only a row with a ``user`` ever gets a code.
    ``public_id`` (256 random bits) names the flow until its code is accepted; from then
    on only the holder of the grant, whose SHA-256 is ``grant_hash``, can finish it,
    before ``grant_expires_at``. No code, grant or password is stored. State changes go
    through ``otp_auth.services.password_reset``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the code")
        VERIFIED = "verified", _("Code accepted")
        COMPLETED = "completed", _("Password changed")
        CANCELLED = "cancelled", _("Cancelled")

    public_id = models.CharField(
        _("public id"), max_length=64, unique=True, default=generate_public_id, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="otp_password_resets",
        verbose_name=_("user"),
        help_text=_("Empty when no single active account matched the request."),
    )
    # What the reset limits count against: "user:<pk>", or for a request that matched no
    # account a keyed hash of what was typed (never the text itself).
    subject = models.CharField(_("limit subject"), max_length=80, editable=False)
    channel = models.CharField(
        _("channel asked for"), max_length=16, choices=Channel.choices, blank=True
    )
    challenge = models.ForeignKey(
        Challenge,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reset code"),
    )
    second_challenge = models.ForeignKey(
        Challenge,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("second-factor code"),
    )
    second_factor = models.CharField(_("second factor passed"), max_length=32, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    # Wrong codes given to a flow that has no code to check (no account, or none sent):
    # counted so that such a flow locks exactly like a real one.
    attempts = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires"))
    verified_at = models.DateTimeField(_("code accepted"), null=True, blank=True)
    grant_hash = models.CharField(max_length=64, blank=True, editable=False)
    grant_expires_at = models.DateTimeField(_("grant expires"), null=True, blank=True)
    completed_at = models.DateTimeField(_("password changed"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=256, blank=True)
    # The user's security epoch when the code was accepted: a change to the account
    # since (another reset, a password change, a factor change) ends the grant.
    epoch = models.PositiveBigIntegerField(_("security epoch"), default=0, editable=False)

    class Meta:
        verbose_name = _("password reset")
        verbose_name_plural = _("password resets")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["subject", "status"], name="otp_auth_reset_subject_idx"),
            models.Index(fields=["grant_hash"], name="otp_auth_reset_grant_idx"),
            models.Index(fields=["created_at"], name="otp_auth_reset_created_idx"),
        ]

    def __str__(self) -> str:
        return str(self.get_status_display())

    def __repr__(self) -> str:
        return f"<PasswordReset {self.pk} {self.status}>"


class WebAuthnCredential(models.Model):
    """A security key or passkey (WebAuthn public-key credential).

    A row exists only once a registration ceremony succeeded (``services.webauthn``):
    there is no unconfirmed state. Nothing here is secret: the public key verifies
    signatures, and the credential id names the key to the authenticator. ``sign_count``
    is the authenticator's counter at the last accepted assertion; a response whose
    counter did not grow (when either is nonzero) is refused as a possible clone.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_webauthn_credentials",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    # base64url of the raw credential id (up to 1023 bytes); looked up by its SHA-256.
    credential_id = models.TextField(_("credential id"), editable=False)
    credential_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The WebAuthn user handle (random, not the user's pk), base64url; the same for
    # every credential of one user.
    user_handle = models.CharField(max_length=128, editable=False)
    public_key = models.BinaryField(editable=False)
    sign_count = models.PositiveBigIntegerField(_("signature counter"), default=0)
    transports = models.JSONField(_("transports"), default=list, blank=True)
    aaguid = models.CharField(_("authenticator model (AAGUID)"), max_length=36, blank=True)
    attestation_format = models.CharField(_("attestation format"), max_length=32, blank=True)
    backup_eligible = models.BooleanField(_("can be synced"), default=False)
    backed_up = models.BooleanField(_("synced"), default=False)
    discoverable = models.BooleanField(_("discoverable (passkey)"), default=False)
    user_verified = models.BooleanField(_("user verified at registration"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("security key or passkey")
        verbose_name_plural = _("security keys and passkeys")
        ordering = ["-last_used_at", "-created_at"]
        indexes = [models.Index(fields=["user"], name="otp_auth_webauthn_user_idx")]

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<WebAuthnCredential {self.pk} sign_count={self.sign_count}>"

    #: Rows exist only after a successful registration ceremony.
    confirmed = True

    @property
    def is_passkey(self) -> bool:
        return self.discoverable or self.backup_eligible

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return str(_("Passkey") if self.is_passkey else _("Security key"))


class ImportedFactor(models.Model):
    """A factor row of another package that ``otp_auth_import`` has moved here.

    ``(source, source_id)`` names the row it came from (``django_otp.totp`` and the
    primary key, for one), so running the command again imports nothing twice. Holds no
    secret: the factor itself lives in ``TOTPDevice``, ``Device`` or ``RecoveryCode``.
    """

    class Kind(models.TextChoices):
        TOTP = "totp", _("authenticator app")
        PHONE = "phone", _("phone")
        RECOVERY_CODES = "recovery_codes", _("recovery codes")

    source = models.CharField(_("source"), max_length=32)
    source_id = models.CharField(_("source row"), max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="otp_imported_factors",
        verbose_name=_("user"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(_("imported"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("imported factor")
        verbose_name_plural = _("imported factors")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], name="otp_auth_imported_factor_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.source_id}"
