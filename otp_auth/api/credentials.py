"""The credential the API hands out after the second factor, and how it is recognised.

``OTP_AUTH["API_CREDENTIAL"]`` chooses what the verify step issues:

* ``"token"``: DRF's ``Token``. Its 40-character key carries a keyed MAC (HMAC from
  ``SECRET_KEY`` bound to the user), so ``IsOTPVerified`` can tell a key issued after the
  second factor from one made any other way (``obtain_auth_token``, the admin, a shell)
  without storing anything else;
* ``"session"``: a Django session login, marked verified like the HTML flow;
* a dotted path to ``issue(*, request, user, verified, factor) -> dict``: the dict is
  added to the response. ``verified`` is false for a password-only login (a user without
  a second factor), which must not be marked verified; ``factor`` is ``"code"``,
  ``"totp"``, ``"recovery"`` or ``""``. JWTs are recognised by an ``amr`` claim containing
  ``"mfa"`` (RFC 8176) and an ``otp_epoch`` claim (``epoch_claim(user)``) equal to the
  user's security epoch, so a change to the account ends them like every credential.

The epoch (``services.epoch``) ends all three: a verified session is logged out, the DRF
token is deleted, and claims carry a stale ``otp_epoch``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, login
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

from ..conf import app_settings
from ..models import Challenge
from ..services import epoch
from ..services.factors import requires_enrollment
from ..services.login import is_session_verified, mark_verified

__all__ = [
    "EPOCH_CLAIM",
    "VERIFIED_AMR",
    "credential_is_verified",
    "epoch_claim",
    "is_verified_token_key",
    "issue_credential",
    "make_verified_token_key",
]

VERIFIED_AMR = "mfa"
EPOCH_CLAIM = "otp_epoch"
KEY_SALT = "otp_auth.api.credentials.token"
NONCE_LENGTH = 22  # secrets.token_urlsafe(16): 128 random bits
MAC_LENGTH = 18  # 108 bits of HMAC-SHA256, URL-safe base64


def _mac(nonce: str, user_pk: object, secret: str) -> str:
    digest = salted_hmac(
        KEY_SALT, f"{nonce}\x1f{user_pk}", secret=secret, algorithm="sha256"
    ).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_LENGTH]


def make_verified_token_key(user: Any) -> str:
    """A fresh 40-character token key that marks itself as issued after the second
    factor for ``user``."""
    nonce = secrets.token_urlsafe(16)
    return nonce + _mac(nonce, user.pk, settings.SECRET_KEY)


def is_verified_token_key(key: object, user_pk: object) -> bool:
    """True if ``key`` came from ``make_verified_token_key`` for ``user_pk``, under
    ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS``."""
    if not isinstance(key, str) or len(key) != NONCE_LENGTH + MAC_LENGTH:
        return False
    nonce, mac = key[:NONCE_LENGTH], key[NONCE_LENGTH:].encode()
    matched = False
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        matched |= hmac.compare_digest(_mac(nonce, user_pk, secret).encode(), mac)
    return matched


def epoch_claim(user: Any) -> int:
    """The value an issuer puts in a token's ``otp_epoch`` claim for ``user``."""
    return epoch.current(user)


def is_session_request(request: Request) -> bool:
    """True when DRF authenticated ``request`` by its session cookie."""
    return isinstance(request.successful_authenticator, SessionAuthentication)


def credential_is_verified(request: Request) -> bool:
    """Whether the credential that authenticated ``request`` proves the second factor.

    A verified session; a DRF token whose key was made by ``make_verified_token_key``;
    or a token with claims (SimpleJWT) whose ``amr`` lists ``"mfa"`` and whose
    ``otp_epoch`` is the user's security epoch. Nothing else.
    """
    user = request.user
    if user is None or not user.is_authenticated:
        return False
    if is_session_request(request):
        return is_session_verified(request._request, user)
    auth = request.auth
    if auth is None:
        return False  # Basic authentication and the like: a password alone.
    key = getattr(auth, "key", None)
    if isinstance(key, str):
        return is_verified_token_key(key, getattr(auth, "user_id", None))
    claims = getattr(auth, "get", None)
    if callable(claims):
        amr = claims("amr")
        return (
            isinstance(amr, list | tuple)
            and VERIFIED_AMR in amr
            and epoch.is_current(user, claims(EPOCH_CLAIM))
        )
    return False


def _token(user: Any, *, verified: bool) -> str:
    """DRF's one token per user: kept if it is of the wanted kind, replaced otherwise.

    A token made elsewhere (not verified) is replaced at the first verified login, and a
    password-only login never receives a verified key.
    """
    from rest_framework.authtoken.models import Token

    def wanted_key() -> str:
        return make_verified_token_key(user) if verified else Token.generate_key()

    token, _ = Token.objects.get_or_create(user=user, defaults={"key": wanted_key()})
    if is_verified_token_key(token.key, user.pk) != verified:
        Token.objects.filter(pk=token.pk).delete()
        token, _ = Token.objects.get_or_create(user=user, defaults={"key": wanted_key()})
    return str(token.key)


def _session_login(
    request: Request,
    user: Any,
    *,
    backend: str | None,
    verified: bool,
    factor: str,
    challenge: Challenge | None,
) -> None:
    session = request._request.session
    if backend is None:
        # Already logged in (a first device was just confirmed): the session gains the
        # second factor, so it gets a new key.
        session.cycle_key()
    else:
        same_user = session.get(SESSION_KEY) == user._meta.pk.value_to_string(user)
        login(request._request, user, backend=backend)
        if same_user:
            # login() keeps the key of a session that already was this user's.
            session.cycle_key()
    if verified:
        mark_verified(request._request, user, challenge, factor=factor)


def issue_credential(
    request: Request,
    user: Any,
    *,
    factor: str = "",
    challenge: Challenge | None = None,
    backend: str | None,
) -> dict[str, Any]:
    """Issue the configured credential and return the response body.

    ``factor`` is the second factor that just passed (``"code"``, ``"totp"``,
    ``"recovery"``), with its ``challenge`` for a sent code; ``""`` for a password-only
    login. ``backend`` is the authentication backend to log a session in with; ``None``
    when the session is already logged in (a first device confirmed).
    """
    mode = app_settings.API_CREDENTIAL
    verified = bool(factor)
    body: dict[str, Any] = {
        "credential": mode if mode in ("token", "session") else "custom",
        "verified": verified,
        "enrollment_required": not verified and requires_enrollment(user),
        "user": {"id": str(user.pk), "username": user.get_username()},
    }
    if mode == "token":
        body["token"] = _token(user, verified=verified)
    elif mode == "session":
        _session_login(
            request, user, backend=backend, verified=verified, factor=factor, challenge=challenge
        )
    else:
        try:
            issuer = import_string(mode)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"OTP_AUTH['API_CREDENTIAL'] = {mode!r} cannot be imported: {exc}"
            ) from exc
        extra = issuer(request=request, user=user, verified=verified, factor=factor)
        if not isinstance(extra, dict):
            raise ImproperlyConfigured(f"The API credential issuer {mode!r} must return a dict.")
        body.update(extra)
    return body
