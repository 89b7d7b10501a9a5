"""Trusted ("remembered") browsers: skip the second factor for a while on one browser.

Off unless ``TRUSTED_BROWSERS`` is True. The browser gets a signed, HttpOnly, Secure,
SameSite=Strict cookie holding 256 random bits; the database keeps only their SHA-256,
the user, and a fingerprint of the user's password hash and security epoch. The
cookie stops working when it expires, when the user forgets the browser (or all of
them) on the devices page, and at any change to the account that advances the epoch
(password, factors, "sign out everywhere", an unlock). It never skips a lock: while the
user's codes are locked, disabled or in the wait after refused codes, the code step is
asked as without it. Staff and superusers are never remembered unless
``TRUSTED_BROWSER_STAFF`` is True. The client's IP address plays no part: a network is
not a factor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ..conf import app_settings
from ..models import TrustedBrowser
from ..utils import user_agent
from . import epoch, lockout

__all__ = [
    "allowed_for",
    "forget",
    "forget_all",
    "forget_cookie",
    "remember",
    "trusted_record",
    "valid_records",
]

SALT = "otp_auth.trusted-browser"
MAX_COOKIE_LENGTH = 256


def allowed_for(user: Any) -> bool:
    """True when this user may have remembered browsers under the current settings."""
    if not app_settings.TRUSTED_BROWSERS:
        return False
    privileged = bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    return app_settings.TRUSTED_BROWSER_STAFF or not privileged


def _fingerprint(user: Any) -> str:
    """Changes with the account's security epoch (and with the password hash, for a
    password written without ``set_password``)."""
    value = f"{user.pk}\x1f{user.password}\x1f{epoch.current(user)}"
    return salted_hmac(f"{SALT}.fingerprint", value, algorithm="sha256").hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def remember(request: HttpRequest, response: HttpResponseBase, user: Any) -> TrustedBrowser | None:
    """Remember this browser for ``user``: a new record and its cookie on ``response``."""
    if not allowed_for(user):
        return None
    token = secrets.token_urlsafe(32)
    days = app_settings.TRUSTED_BROWSER_DAYS
    now = timezone.now()
    record = TrustedBrowser.objects.create(
        user=user,
        token_hash=_token_hash(token),
        fingerprint=_fingerprint(user),
        user_agent=user_agent(request),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    response.set_cookie(
        app_settings.TRUSTED_BROWSER_COOKIE_NAME,
        _signer().sign(token),
        max_age=days * 86_400,
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )
    return record


def _cookie_token(request: HttpRequest) -> str | None:
    raw = request.COOKIES.get(app_settings.TRUSTED_BROWSER_COOKIE_NAME)
    if not raw or len(raw) > MAX_COOKIE_LENGTH:
        return None
    try:
        return _signer().unsign(raw)
    except signing.BadSignature:
        return None


def trusted_record(request: HttpRequest, user: Any) -> TrustedBrowser | None:
    """The valid record that lets this browser skip the second factor for ``user``.

    ``None`` without a cookie, with a forged, expired or forgotten one, for another user,
    after a change to the account (its security epoch), while the user's codes are
    refused (lock, disabled factor, wait), or when the settings no longer allow it. A
    stale record is deleted on sight.
    """
    if not allowed_for(user):
        return None
    token = _cookie_token(request)
    if token is None:
        return None
    record = TrustedBrowser.objects.filter(token_hash=_token_hash(token), user_id=user.pk).first()
    if record is None or lockout.refuses_now(user.pk):
        return None
    now = timezone.now()
    fresh = hmac.compare_digest(record.fingerprint, _fingerprint(user))
    if record.expires_at <= now or not fresh:
        record.delete()
        return None
    record.last_used_at = now
    record.save(update_fields=["last_used_at"])
    return record


def valid_records(user: Any) -> list[TrustedBrowser]:
    """The user's remembered browsers that still work (not expired, current epoch)."""
    return list(
        TrustedBrowser.objects.filter(
            user_id=user.pk, expires_at__gt=timezone.now(), fingerprint=_fingerprint(user)
        )
    )


def current_record_id(request: HttpRequest, user: Any) -> int | None:
    """The pk of this browser's record for ``user`` (to mark "this browser"), if any."""
    token = _cookie_token(request)
    if token is None:
        return None
    return (
        TrustedBrowser.objects.filter(token_hash=_token_hash(token), user_id=user.pk)
        .values_list("pk", flat=True)
        .first()
    )


def forget(user: Any, record_id: object) -> bool:
    """Forget one of the user's browsers. True if it existed."""
    try:
        pk = int(str(record_id))
    except ValueError:
        return False
    if not 0 < pk < 2**63:
        return False
    deleted, _ = TrustedBrowser.objects.filter(user_id=user.pk, pk=pk).delete()
    return bool(deleted)


def forget_all(user: Any) -> int:
    """Forget every browser of the user (factor or password changes call this)."""
    deleted, _ = TrustedBrowser.objects.filter(user_id=user.pk).delete()
    return deleted


def forget_cookie(response: HttpResponseBase) -> None:
    response.delete_cookie(app_settings.TRUSTED_BROWSER_COOKIE_NAME, path="/", samesite="Strict")
