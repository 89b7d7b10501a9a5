"""Choices and session keys shared by every layer."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = [
    "ENROLL_SESSION_KEY",
    "PENDING_COOKIE_NAME",
    "PENDING_SESSION_KEY",
    "STEP_UP_SESSION_KEY",
    "VERIFIED_SESSION_KEY",
    "Channel",
    "ChallengeStatus",
    "Purpose",
]


class Purpose(models.TextChoices):
    """What a challenge unlocks. A code is only ever accepted for its own purpose."""

    LOGIN = "login", _("Login")
    ENROLLMENT = "enrollment", _("Device enrollment")
    PASSWORD_RESET = "password_reset", _("Password reset")
    STEP_UP = "step_up", _("Sensitive action")


class Channel(models.TextChoices):
    """How a code reaches the user."""

    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice call")
    EMAIL = "email", _("Email")


PHONE_CHANNELS = frozenset({Channel.SMS, Channel.VOICE})


class ChallengeStatus(models.TextChoices):
    """Life cycle of a challenge. Only ``PENDING`` challenges accept a code."""

    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    LOCKED = "locked", _("Locked (too many attempts)")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")
    SEND_FAILED = "send_failed", _("Delivery failed")


#: The cookie that carries a pending HTML login between the password and the code step:
#: signed, HttpOnly, ``LOGIN_TIMEOUT`` long, never a password or a code.
PENDING_COOKIE_NAME = "otp_auth_login"

# Session keys. Only ids and timestamps are stored under them: never a password or a code.
PENDING_SESSION_KEY = "_otp_auth_pending"
VERIFIED_SESSION_KEY = "_otp_auth_verified"
STEP_UP_SESSION_KEY = "_otp_auth_step_up"
ENROLL_SESSION_KEY = "_otp_auth_enroll"
