"""The account-security epoch: one per-user number, one rule for what ends what.

Every change to a user's credentials or factors advances the user's epoch: a password
change or reset, a factor added, removed, disabled or unlocked (HTML, API, admin or
command), new recovery codes, "sign out everywhere else", deactivation. Everything that
vouches for the user carries the epoch it was made under and is refused once it moved:

* verified sessions (the middleware logs them out);
* pending HTML logins and API flow tokens (the next step says the flow expired);
* credentials issued by the API: sessions as above, DRF tokens (deleted by ``advance``),
  tokens with claims (their ``otp_epoch`` claim), and the site's own issuer through the
  ``epoch_advanced`` signal;
* remembered browsers (their fingerprint includes the epoch);
* step-up stamps and password-reset requests and grants.

Revocation is therefore "advance the epoch", never a list of things to delete that a new
kind of artefact could be missing from. The session (or token) that made the change
keeps working, re-stamped with the new epoch, unless ``keep_current=False`` (a reset).

Reading it costs no query on the hot path. The user's epoch is cached under its own key
(the database stays the authority); and a verified session does not even read that key
while a single cache-wide *version*, drawn anew at every advance anywhere, is the one
it last checked. A process reuses the version it read for ``MEMO_SECONDS``, so another
process sees an advance within that time; the process that made it, at once.
"""

from __future__ import annotations

import contextvars
import copy
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.contrib.auth import SESSION_KEY
from django.core.cache import BaseCache, caches
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from ..conf import app_settings
from ..constants import STEP_UP_SESSION_KEY, VERIFIED_SESSION_KEY
from ..models import SecurityEpoch
from ..signals import epoch_advanced

__all__ = [
    "MEMO_SECONDS",
    "Reason",
    "advance",
    "connect",
    "sign_out_everywhere_else",
    "current",
    "current_request",
    "forget_memo",
    "is_current",
    "session_stale",
    "session_stamp",
]

VERSION_KEY = "otp_auth:epoch-version"
USER_KEY = "otp_auth:epoch:{}"
USER_KEY_TIMEOUT = 86_400
MEMO_SECONDS = 1.0


class Reason:
    """Why an epoch moved: stored on the row and sent with ``epoch_advanced``."""

    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    FACTOR_ADDED = "factor_added"
    FACTOR_REMOVED = "factor_removed"
    RECOVERY_CODES = "recovery_codes"
    FACTOR_DISABLED = "factor_disabled"
    UNLOCKED = "unlocked"
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
    DEACTIVATED = "deactivated"


def _cache() -> BaseCache:
    return caches[app_settings.CACHE]


# The request being served, so that an advance made deep inside a save (a password
# change through ``set_password``) still knows which session made it.
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "otp_auth_request", default=None
)


@contextmanager
def current_request(request: HttpRequest) -> Iterator[None]:
    """Serve ``request`` as the one an advance without an explicit request belongs to."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


# Version memo ---------------------------------------------------------------------------

_memo: tuple[str, float] | None = None


def _version() -> str:
    """The cache-wide version now in force (drawn and stored if the cache has none)."""
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


def forget_memo() -> None:
    """Drop this process's copy of the version (tests that clear the cache call it)."""
    global _memo
    _memo = None


# Reading --------------------------------------------------------------------------------


def _user_id(user_or_id: Any) -> str:
    return str(getattr(user_or_id, "pk", user_or_id))


def current(user_or_id: Any) -> int:
    """The user's epoch now: from the cache, else from the database (then cached)."""
    key = USER_KEY.format(_user_id(user_or_id))
    cache = _cache()
    value = cache.get(key)
    if value is None:
        row = SecurityEpoch.objects.filter(user_id=getattr(user_or_id, "pk", user_or_id))
        value = row.values_list("value", flat=True).first() or 0
        # add(), not set(): a value published by a concurrent advance wins over this read.
        cache.add(key, value, USER_KEY_TIMEOUT)
    return int(value)


def is_current(user_or_id: Any, value: object) -> bool:
    """True when ``value`` (carried by an artefact) is the user's epoch now."""
    try:
        carried = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return bool(carried == current(user_or_id))


# Advancing ------------------------------------------------------------------------------


def _publish(user_id: str, value: int) -> None:
    global _memo
    cache = _cache()
    cache.set(USER_KEY.format(user_id), value, USER_KEY_TIMEOUT)
    cache.set(VERSION_KEY, secrets.token_hex(8), None)
    _memo = None


def _increment(user_pk: Any, reason: str) -> int:
    now = timezone.now()
    rows = SecurityEpoch.objects.filter(user_id=user_pk)
    with transaction.atomic():
        if not rows.update(value=F("value") + 1, changed_at=now, reason=reason):
            try:
                with transaction.atomic():
                    SecurityEpoch.objects.create(
                        user_id=user_pk, value=1, changed_at=now, reason=reason
                    )
            except IntegrityError:  # created meanwhile by a concurrent advance
                rows.update(value=F("value") + 1, changed_at=now, reason=reason)
        return int(rows.values_list("value", flat=True).get())


def advance(
    user: Any,
    *,
    reason: str,
    request: HttpRequest | None = None,
    keep_current: bool = True,
) -> int:
    """Advance ``user``'s epoch: everything made under the old one stops vouching.

    ``request`` (default: the request being served) is the one that made the change: its
    session, if it is this user's, and the DRF token it was authenticated with are
    re-stamped and kept, unless ``keep_current`` is false. Returns the new epoch.
    """
    request = request if request is not None else _request.get()
    user_id = _user_id(user)
    value = _increment(user.pk, reason)
    _publish(user_id, value)
    # A reader that looked while this transaction was open saw the old row; publishing
    # again after the commit overwrites what it may have cached.
    transaction.on_commit(lambda: _publish(user_id, value))
    keep = request if keep_current else None
    if keep is not None:
        _restamp_session(keep, user_id, value)
    _revoke_tokens(user, keep)
    epoch_advanced.send(
        sender=SecurityEpoch,
        user=user,
        epoch=value,
        reason=reason,
        request=request,
        keep_current=keep_current,
    )
    return value


def _restamp_session(request: HttpRequest, user_id: str, value: int) -> None:
    session = getattr(request, "session", None)
    if session is None or str(session.get(SESSION_KEY, "")) != user_id:
        return
    for name in (VERIFIED_SESSION_KEY, STEP_UP_SESSION_KEY):
        marker = session.get(name)
        if isinstance(marker, dict) and marker.get("user") == user_id:
            session[name] = {**marker, **session_stamp(value)}
    from .login import restamp

    restamp(request, user_id, value)


def _revoke_tokens(user: Any, keep: HttpRequest | None) -> None:
    """Delete the user's DRF token, unless it authenticated the request that keeps its
    credential. Through the app registry: the service layer never imports DRF."""
    if not apps.is_installed("rest_framework.authtoken"):
        return
    tokens = apps.get_model("authtoken", "Token")._default_manager.filter(user_id=user.pk)
    kept = getattr(getattr(keep, "auth", None), "pk", None) if keep is not None else None
    if kept is not None:
        tokens = tokens.exclude(pk=kept)
    tokens.delete()


# Sessions -------------------------------------------------------------------------------


def session_stamp(value: int) -> dict[str, Any]:
    """The fields a session marker carries: the epoch and the version it was checked at."""
    return {"e": value, "v": _version()}


def session_stale(request: HttpRequest, user: Any) -> bool:
    """True when this session's verification for ``user`` was made under an old epoch.

    No query and, within ``MEMO_SECONDS`` of the last check, no cache read either while
    no epoch moved anywhere; one cache read (a query only when the cache lost the key)
    after some advance, then the session carries the new version.
    """
    marker = request.session.get(VERIFIED_SESSION_KEY)
    if not isinstance(marker, dict) or marker.get("user") != str(user.pk):
        return False
    version = _version()
    if marker.get("v") == version:
        return False
    if not is_current(user, marker.get("e", 0)):
        return True
    request.session[VERIFIED_SESSION_KEY] = {**marker, "v": version}
    return False


def sign_out_everywhere_else(request: HttpRequest, user: Any) -> int:
    """End every other session, token, flow and remembered browser of ``user``; the
    session (or token) of ``request`` stays. Audited."""
    from ..models import AuditEvent
    from . import audit

    value = advance(user, reason=Reason.SIGNED_OUT_EVERYWHERE, request=request)
    audit.log(AuditEvent.Kind.SIGNED_OUT_EVERYWHERE, user=user, request=request)
    return value


# Changes made outside otp_auth --------------------------------------------------------


def _on_user_saved(sender: Any, *, instance: Any, created: bool, **kwargs: Any) -> None:
    """A password set through ``set_password`` (any view, the admin, a shell) and a
    deactivation advance the epoch. ``AbstractBaseUser`` keeps the raw password in
    ``_password`` from ``set_password`` until just after this signal."""
    if created:
        return
    update_fields = kwargs.get("update_fields")
    if getattr(instance, "_password", None) is not None:
        # Receivers of ``epoch_advanced`` get a copy without the raw password, which
        # Django clears from the instance only after this signal.
        user = copy.copy(instance)
        user._password = None
        advance(user, reason=Reason.PASSWORD_CHANGED)
    elif getattr(instance, "is_active", True) is False and (
        update_fields is None or "is_active" in update_fields
    ):
        advance(instance, reason=Reason.DEACTIVATED, keep_current=False)


def connect() -> None:
    """Connect the receiver above (from ``AppConfig.ready``)."""
    from django.conf import settings
    from django.db.models.signals import post_save

    post_save.connect(
        _on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="otp_auth.epoch.user"
    )
