"""Security keys and passkeys (WebAuthn), through py_webauthn (the ``webauthn`` extra).

A *ceremony* is one registration or one assertion: a random 32-byte challenge kept on
the server (in the cache, under a random id) with what it is for. It is single-use
(taken by an atomic cache delete, so two answers to one challenge get one verdict),
expires after ``WEBAUTHN_TIMEOUT``, is bound to what asked for it (the HTML session, an
API login flow, a user) and carries the user's security epoch: a change to the account
in between ends it. The RP id and the allowed origins are fixed when it starts and
checked by py_webauthn against what the authenticator signed.

An assertion is judged inside ``factors.check_code``: the same lockout budget, per-address
limit, audit and signals as every code. A signature counter that did not grow (when the
authenticator keeps one) is refused as a possible cloned key, and audited as such.
A credential row is written only after a successful registration ceremony.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..exceptions import (
    DeviceError,
    FlowExpiredError,
    InvalidCodeError,
    OTPAuthError,
    WebAuthnRefusedError,
    WebAuthnRegistrationError,
)
from ..models import AuditEvent, WebAuthnCredential
from ..signals import factor_verified
from . import audit, epoch, guard
from .factors import audit_factor, check_code, factor_added_hook, remove_factor

__all__ = [
    "MAX_CREDENTIALS",
    "Ceremony",
    "authentication_options",
    "available",
    "origins",
    "passkey_options",
    "register",
    "registration_options",
    "remove_credential",
    "rp_id",
    "verify_assertion",
    "verify_passkey",
]

#: Most security keys and passkeys one user may register.
MAX_CREDENTIALS = 20
#: Longest JSON answer of an authenticator that is read at all.
MAX_RESPONSE_LENGTH = 64 * 1024
SESSION_KEY = "_otp_auth_webauthn"
_PREFIX = "otp_auth:webauthn:"


def available() -> bool:
    """True when py_webauthn is installed."""
    try:
        import webauthn  # noqa: F401
    except ImportError:
        return False
    return True


def _now() -> datetime:
    from django.utils import timezone

    return timezone.now()


def _host(request: HttpRequest | None) -> str:
    return request.get_host().rsplit(":", 1)[0] if request is not None else "localhost"


def rp_id(request: HttpRequest | None) -> str:
    """``WEBAUTHN_RP_ID``, or the request's host."""
    return app_settings.WEBAUTHN_RP_ID or _host(request).strip("[]").lower()


def rp_name(request: HttpRequest | None) -> str:
    return app_settings.WEBAUTHN_RP_NAME or app_settings.SITE_NAME or rp_id(request)


def origins(request: HttpRequest | None) -> list[str]:
    """``WEBAUTHN_ORIGINS``, or the request's own scheme and host."""
    configured = app_settings.WEBAUTHN_ORIGINS
    if configured:
        return configured
    if request is None:
        return []
    return [f"{request.scheme}://{request.get_host()}"]


def _b64(raw: bytes) -> str:
    from webauthn.helpers import bytes_to_base64url

    return str(bytes_to_base64url(raw))


def _unb64(text: str) -> bytes:
    from webauthn.helpers import base64url_to_bytes

    return bytes(base64url_to_bytes(text))


def _digest(raw_id: bytes) -> str:
    return hashlib.sha256(raw_id).hexdigest()


# --------------------------------------------------------------------- ceremonies


@dataclass(frozen=True)
class Ceremony:
    """What the server remembers of one challenge. Holds nothing secret: the challenge
    only has to be unpredictable and used once."""

    id: str
    kind: str  # "register", "assert" or "passkey"
    challenge: str  # base64url
    user_id: str  # "" for a passkey sign-in (the user is not known yet)
    bind: str  # a session's or API flow's id, "user:<pk>", or "passkey"
    epoch: int
    expires_at: float
    rp_id: str
    origins: tuple[str, ...]
    passkey: bool = False  # a registration that asks for a discoverable credential
    user_handle: str = ""  # for a registration


def _cache() -> Any:
    return caches[app_settings.CACHE]


def _start(
    kind: str,
    *,
    user: Any,
    bind: str,
    request: HttpRequest | None,
    challenge: bytes,
    passkey: bool = False,
    user_handle: str = "",
) -> Ceremony:
    timeout = app_settings.WEBAUTHN_TIMEOUT
    ceremony = Ceremony(
        id=secrets.token_urlsafe(24),
        kind=kind,
        challenge=_b64(challenge),
        user_id=str(user.pk) if user is not None else "",
        bind=bind,
        epoch=epoch.current(user) if user is not None else 0,
        expires_at=time.time() + timeout,
        rp_id=rp_id(request),
        origins=tuple(origins(request)),
        passkey=passkey,
        user_handle=user_handle,
    )
    _cache().set(_PREFIX + ceremony.id, asdict(ceremony), timeout)
    return ceremony


def _take(ceremony_id: object, *, kind: str, bind: str, user: Any) -> Ceremony | None:
    """The ceremony, spent, if it is this kind's, bound to ``bind``, for ``user``, not
    expired and of the user's current epoch; else ``None`` (spent all the same)."""
    if not isinstance(ceremony_id, str) or not 0 < len(ceremony_id) <= 64:
        return None
    key = _PREFIX + ceremony_id
    raw = _cache().get(key)
    if not isinstance(raw, dict) or not _cache().delete(key):
        return None  # unknown, expired, or taken by a concurrent answer
    try:
        ceremony = Ceremony(**{**raw, "origins": tuple(raw["origins"])})
    except (TypeError, KeyError):
        return None
    expected_user = str(user.pk) if user is not None else ""
    if (
        ceremony.kind != kind
        or not secrets.compare_digest(ceremony.bind, bind)
        or ceremony.user_id != expected_user
        or ceremony.expires_at < time.time()
    ):
        return None
    if user is not None and not epoch.is_current(user.pk, ceremony.epoch):
        raise FlowExpiredError()
    return ceremony


def remember(request: HttpRequest, kind: str, ceremony: Ceremony) -> None:
    """Bind a ceremony to this browser session (the HTML views)."""
    stored = request.session.get(SESSION_KEY)
    stored = dict(stored) if isinstance(stored, dict) else {}
    stored[kind] = ceremony.id
    request.session[SESSION_KEY] = stored


def recall(request: HttpRequest, kind: str) -> str:
    """The id of this session's ceremony of ``kind``, forgotten as it is read."""
    stored = request.session.get(SESSION_KEY)
    if not isinstance(stored, dict) or kind not in stored:
        return ""
    stored = dict(stored)
    value = stored.pop(kind)
    request.session[SESSION_KEY] = stored
    return str(value)


def session_bind(request: HttpRequest) -> str:
    """A random value of this session, that its ceremonies are bound to."""
    stored = request.session.get(SESSION_KEY)
    stored = dict(stored) if isinstance(stored, dict) else {}
    if not isinstance(stored.get("bind"), str):
        stored["bind"] = secrets.token_urlsafe(16)
        request.session[SESSION_KEY] = stored
    return f"session:{stored['bind']}"


def _as_dict(response: object) -> dict[str, Any]:
    """The authenticator's answer as a dict, from a dict or a JSON string."""
    if isinstance(response, str):
        if len(response) > MAX_RESPONSE_LENGTH:
            raise ValueError("too long")
        response = json.loads(response)
    if not isinstance(response, dict):
        raise ValueError("not an object")
    return response


# -------------------------------------------------------------------- registration


def _user_handle(user: Any) -> str:
    """The user's WebAuthn handle: random (never the pk), the same for all their keys, so
    that an authenticator replaces an older passkey of the same account."""
    existing = (
        WebAuthnCredential.objects.filter(user_id=user.pk)
        .values_list("user_handle", flat=True)
        .first()
    )
    return existing or _b64(secrets.token_bytes(32))


def _descriptor(row: WebAuthnCredential) -> Any:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    transports = []
    for value in row.transports or []:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=_unb64(row.credential_id), transports=transports)


def registration_options(
    user: Any, *, request: HttpRequest | None, bind: str, passkey: bool = False
) -> tuple[Ceremony, dict[str, Any]]:
    """Start a registration: the ceremony and the ``publicKey`` options for
    ``navigator.credentials.create()``, as JSON. ``passkey`` asks for a discoverable
    credential with user verification (one that can sign in without a password)."""
    from webauthn import generate_registration_options
    from webauthn.helpers import options_to_json_dict
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorAttachment,
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    existing = list(WebAuthnCredential.objects.filter(user_id=user.pk))
    if len(existing) >= MAX_CREDENTIALS:
        raise DeviceError(_("You have registered as many security keys as allowed."))
    attachment = app_settings.WEBAUTHN_ATTACHMENT
    verification = "required" if passkey else app_settings.WEBAUTHN_USER_VERIFICATION
    handle = existing[0].user_handle if existing else _user_handle(user)
    challenge = secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp_id(request),
        rp_name=rp_name(request),
        user_name=user.get_username(),
        user_id=_unb64(handle),
        challenge=challenge,
        timeout=app_settings.WEBAUTHN_TIMEOUT * 1000,
        attestation=AttestationConveyancePreference(app_settings.WEBAUTHN_ATTESTATION),
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=AuthenticatorAttachment(attachment) if attachment else None,
            resident_key=(
                ResidentKeyRequirement.REQUIRED if passkey else ResidentKeyRequirement.DISCOURAGED
            ),
            user_verification=UserVerificationRequirement(verification),
        ),
        exclude_credentials=[_descriptor(row) for row in existing],
    )
    ceremony = _start(
        "register",
        user=user,
        bind=bind,
        request=request,
        challenge=challenge,
        passkey=passkey,
        user_handle=handle,
    )
    return ceremony, dict(options_to_json_dict(options))


def register(
    user: Any,
    ceremony_id: object,
    response: object,
    *,
    bind: str,
    name: str = "",
    request: HttpRequest | None = None,
    mark_session: bool = True,
) -> WebAuthnCredential:
    """Finish a registration: verify the authenticator's answer against the ceremony
    (challenge, origin, RP id, user presence and, for a passkey or with
    ``WEBAUTHN_USER_VERIFICATION = "required"``, user verification), then store the
    credential. Raises ``WebAuthnRegistrationError``; ``FlowExpiredError`` when the
    account changed since the ceremony began. Callers apply the factor-change policy
    before starting the ceremony; a first factor also marks the session verified (HTML)."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.parse_registration_credential_json import (
        parse_registration_credential_json,
    )
    from webauthn.helpers.structs import CredentialDeviceType

    ceremony = _take(ceremony_id, kind="register", bind=bind, user=user)
    if ceremony is None:
        raise WebAuthnRegistrationError()
    try:
        parsed = parse_registration_credential_json(_as_dict(response))
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=_unb64(ceremony.challenge),
            expected_rp_id=ceremony.rp_id,
            expected_origin=list(ceremony.origins),
            require_user_verification=(
                ceremony.passkey or app_settings.WEBAUTHN_USER_VERIFICATION == "required"
            ),
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        audit_factor(AuditEvent.Kind.FAILED, user, "webauthn", request=request, reason="register")
        raise WebAuthnRegistrationError() from exc
    transports = [t.value for t in (parsed.response.transports or [])]
    multi_device = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    row = WebAuthnCredential(
        user=user,
        name=name.strip()[:64],
        credential_id=_b64(verified.credential_id),
        credential_hash=_digest(verified.credential_id),
        user_handle=ceremony.user_handle,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports[:8],
        aaguid=str(verified.aaguid)[:36],
        attestation_format=str(getattr(verified.fmt, "value", verified.fmt))[:32],
        backup_eligible=multi_device,
        backed_up=verified.credential_backed_up,
        discoverable=ceremony.passkey,
        user_verified=verified.user_verified,
    )
    from .policy import has_any_factor

    first = not has_any_factor(user)
    audit.attach(row, request=request)
    try:
        with transaction.atomic():
            row.save()  # _on_key_saved audits and advances the epoch
    except IntegrityError as exc:  # this key is already registered (here or elsewhere)
        raise WebAuthnRegistrationError() from exc
    if first and mark_session and request is not None and hasattr(request, "session"):
        from .login import gain_second_factor

        gain_second_factor(request, user, None, factor="webauthn")
    factor_added_hook(request, user, row)
    return row


# ---------------------------------------------------------------------- assertions


def _request_options(
    challenge: bytes, request: HttpRequest | None, allow: list[Any], uv: str
) -> Any:
    from webauthn import generate_authentication_options
    from webauthn.helpers.structs import UserVerificationRequirement

    return generate_authentication_options(
        rp_id=rp_id(request),
        challenge=challenge,
        timeout=app_settings.WEBAUTHN_TIMEOUT * 1000,
        allow_credentials=allow,
        user_verification=UserVerificationRequirement(uv),
    )


def authentication_options(
    user: Any, *, request: HttpRequest | None, bind: str
) -> tuple[Ceremony, dict[str, Any]]:
    """Start an assertion by one of ``user``'s keys (the second step, or a step-up): the
    ceremony and the ``publicKey`` options for ``navigator.credentials.get()``."""
    from webauthn.helpers import options_to_json_dict

    rows = list(WebAuthnCredential.objects.filter(user_id=user.pk))
    if not rows:
        raise DeviceError()
    challenge = secrets.token_bytes(32)
    options = _request_options(
        challenge,
        request,
        [_descriptor(row) for row in rows],
        app_settings.WEBAUTHN_USER_VERIFICATION,
    )
    ceremony = _start("assert", user=user, bind=bind, request=request, challenge=challenge)
    return ceremony, dict(options_to_json_dict(options))


def passkey_options(*, request: HttpRequest | None, bind: str) -> tuple[Ceremony, dict[str, Any]]:
    """Start a passkey sign-in: no user yet, no credential list (the authenticator offers
    its discoverable credentials), user verification required."""
    from webauthn.helpers import options_to_json_dict

    challenge = secrets.token_bytes(32)
    options = _request_options(challenge, request, [], "required")
    ceremony = _start("passkey", user=None, bind=bind, request=request, challenge=challenge)
    return ceremony, dict(options_to_json_dict(options))


def _parse_assertion(response: object) -> Any | None:
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.parse_authentication_credential_json import (
        parse_authentication_credential_json,
    )

    try:
        return parse_authentication_credential_json(_as_dict(response))
    except (WebAuthnException, ValueError, TypeError, KeyError):
        return None


def _judge_assertion(
    user: Any,
    ceremony: Ceremony,
    parsed: Any,
    *,
    request: HttpRequest | None,
    require_uv: bool,
) -> WebAuthnCredential:
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    digest = _digest(bytes(parsed.raw_id)) if parsed is not None else ""

    def lock_row() -> WebAuthnCredential | None:
        if parsed is None:
            return None
        qs = WebAuthnCredential.objects.select_related("user").filter(
            user_id=user.pk, credential_hash=digest
        )
        if connection.features.has_select_for_update_of:
            return qs.select_for_update(of=("self",)).first()
        return qs.select_for_update().first()

    def judge(row: WebAuthnCredential, now: datetime) -> tuple[OTPAuthError | None, str]:
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=_unb64(ceremony.challenge),
                expected_rp_id=ceremony.rp_id,
                expected_origin=list(ceremony.origins),
                credential_public_key=bytes(row.public_key),
                # The counter is judged below, so that a regression is told apart.
                credential_current_sign_count=0,
                require_user_verification=require_uv,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError):
            return WebAuthnRefusedError("wrong"), "wrong"
        counter = verified.new_sign_count
        if (counter or row.sign_count) and counter <= row.sign_count:
            # The key's counter went backwards or stood still: a copy of the key may be
            # in use. Refused, counted and audited ("sign_count").
            return WebAuthnRefusedError("sign_count"), "sign_count"
        row.sign_count = counter
        row.backed_up = verified.credential_backed_up
        row.last_used_at = now
        row.save(update_fields=["sign_count", "backed_up", "last_used_at"])
        return None, ""

    try:
        row = check_code(
            user, factor="webauthn", now=_now(), request=request, lock_row=lock_row, judge=judge
        )
    except WebAuthnRefusedError:
        raise
    except OTPAuthError as exc:
        if type(exc) is InvalidCodeError:  # no such key of this user
            raise WebAuthnRefusedError(getattr(exc, "reason", "unknown")) from exc
        raise
    audit_factor(AuditEvent.Kind.VERIFIED, row.user, "webauthn", request=request)
    factor_verified.send(
        sender=WebAuthnCredential, user=row.user, factor="webauthn", remaining=None, request=request
    )
    return row


def verify_assertion(
    user: Any,
    ceremony_id: object,
    response: object,
    *,
    bind: str,
    request: HttpRequest | None = None,
) -> WebAuthnCredential:
    """Accept an assertion by one of ``user``'s keys, once, under the user's lockout
    budget. Raises ``WebAuthnRefusedError``, ``RateLimitedError`` (or
    ``AccountLockedError``) like any code, and ``FlowExpiredError``."""
    ceremony = _take(ceremony_id, kind="assert", bind=bind, user=user)
    if ceremony is None:
        raise WebAuthnRefusedError("unknown")
    require_uv = app_settings.WEBAUTHN_USER_VERIFICATION == "required"
    return _judge_assertion(
        user, ceremony, _parse_assertion(response), request=request, require_uv=require_uv
    )


def verify_passkey(
    ceremony_id: object,
    response: object,
    *,
    bind: str,
    request: HttpRequest | None = None,
) -> WebAuthnCredential:
    """Accept a passkey sign-in: a discoverable credential, with user verification, whose
    user handle matches the stored one. Returns the credential, with ``.user`` loaded;
    the caller signs the user in. An unknown key is refused with the same answer as a
    bad signature, and counts against the client's address."""
    ceremony = _take(ceremony_id, kind="passkey", bind=bind, user=None)
    if ceremony is None:
        raise WebAuthnRefusedError("unknown")
    parsed = _parse_assertion(response)
    row = None
    if parsed is not None:
        row = (
            WebAuthnCredential.objects.select_related("user")
            .filter(credential_hash=_digest(bytes(parsed.raw_id)))
            .first()
        )
    handle = getattr(getattr(parsed, "response", None), "user_handle", None)
    if (
        row is None
        or not handle
        or not secrets.compare_digest(_b64(bytes(handle)), row.user_handle)
        or not getattr(row.user, "is_active", True)
    ):
        guard.before_verify(request)  # counted as a refused attempt from this address
        audit.log(AuditEvent.Kind.FAILED, request=request, reason="passkey_unknown")
        raise WebAuthnRefusedError("unknown")
    return _judge_assertion(row.user, ceremony, parsed, request=request, require_uv=True)


def login_backend() -> str:
    """The backend a passkey sign-in is recorded under (Django needs one to reload the
    user): Django's ``ModelBackend`` when configured, else the first backend."""
    backends = list(settings.AUTHENTICATION_BACKENDS)
    model_backend = "django.contrib.auth.backends.ModelBackend"
    return model_backend if model_backend in backends else backends[0]


def remove_credential(
    user: Any, credential_id: object, *, request: HttpRequest | None = None, actor: Any = None
) -> None:
    """Delete one of the user's keys (``factors.remove_factor``). Callers apply the
    factor-change policy first. Raises ``DeviceError`` for a key the user does not have."""
    try:
        pk = int(str(credential_id))
    except ValueError as exc:
        raise DeviceError() from exc
    if not 0 < pk < 2**63:
        raise DeviceError()
    row = WebAuthnCredential.objects.filter(user_id=user.pk, pk=pk).select_related("user").first()
    if row is None:
        raise DeviceError()
    remove_factor(row, request=request, actor=actor)
