"""Ending a user's other sessions when a factor is removed, with any session backend.

Django can only list sessions with the database backend, so nothing here deletes
sessions. Instead, a verified session remembers when it passed the second factor
(``ts``), and ``SessionRevocation`` holds, per user, the time before which verified
sessions no longer count. The middleware compares the two and logs such a session out on
its next request.

Reading the database on every request would cost a query per page, so a single cache key
holds a random *revocation version* that changes whenever any user revokes sessions. A
session stores the version it last checked; while the cache still holds that version,
nothing was revoked since and no query runs. After any revocation, each active session
looks up its user's row once, then carries the new version. When the cache loses the key
(restart, eviction), a new version is drawn, so every session checks again: the database
stays the authority.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.core.cache import BaseCache, caches
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from ..conf import app_settings
from ..constants import VERIFIED_SESSION_KEY
from ..models import SessionRevocation

__all__ = ["current_version", "revoke_other_sessions", "session_revoked", "stamp"]

VERSION_KEY = "otp_auth:revocation-version"


def _cache() -> BaseCache:
    return caches[getattr(app_settings, "CACHE", "default")]


# The version read from the cache, reused by this process for MEMO_SECONDS: a verified
# request then costs no cache round trip, and a revocation made by another process takes
# effect here within that time. A revocation made by this process applies at once.
MEMO_SECONDS = 1.0
_memo: tuple[str, float] | None = None


def current_version() -> str:
    """The revocation version now in force (drawn and stored if the cache has none)."""
    global _memo
    if _memo is not None and time.monotonic() - _memo[1] < MEMO_SECONDS:
        return _memo[0]
    cache = _cache()
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, secrets.token_hex(8), None)
        version = cache.get(VERSION_KEY) or ""
    _memo = (str(version), time.monotonic())
    return _memo[0]


def _new_version() -> None:
    global _memo
    _memo = None
    _cache().set(VERSION_KEY, secrets.token_hex(8), None)


def forget_memo() -> None:
    """Drop this process's copy of the version (tests that clear the cache call it)."""
    global _memo
    _memo = None


def revoke_other_sessions(request: HttpRequest | None, user: Any) -> None:
    """End every verified session of ``user`` except the one of ``request``.

    Without a request (management commands, admin actions), all of them end.
    """
    now = timezone.now()
    SessionRevocation.objects.update_or_create(user_id=user.pk, defaults={"revoked_at": now})
    _new_version()
    # A session that checked while this transaction was open read the old row; drawing
    # once more after the commit makes it check again.
    transaction.on_commit(_new_version)
    if request is None or not hasattr(request, "session"):
        return
    marker = request.session.get(VERIFIED_SESSION_KEY)
    if isinstance(marker, dict) and marker.get("user") == str(user.pk):
        marker["ts"] = now.timestamp()
        marker["v"] = current_version()
        request.session[VERIFIED_SESSION_KEY] = marker


def session_revoked(request: HttpRequest, user: Any) -> bool:
    """True when this verified session of ``user`` was ended from another session.

    Costs one cache read; a query only after some revocation happened anywhere.
    """
    marker = request.session.get(VERIFIED_SESSION_KEY)
    if not isinstance(marker, dict) or marker.get("user") != str(user.pk):
        return False
    version = current_version()
    if marker.get("v") == version:
        return False
    revoked_at = (
        SessionRevocation.objects.filter(user_id=user.pk)
        .values_list("revoked_at", flat=True)
        .first()
    )
    verified_at = marker.get("ts", marker.get("at", 0))
    if revoked_at is not None and _as_float(verified_at) < revoked_at.timestamp():
        return True
    marker["v"] = version
    request.session[VERIFIED_SESSION_KEY] = marker
    return False


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def stamp() -> dict[str, Any]:
    """The fields ``mark_verified`` adds to the verified marker."""
    return {"ts": time.time(), "v": current_version()}
