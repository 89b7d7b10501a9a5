"""The factor-change policy: the one rule for adding, removing or regenerating a factor.

HTML views, API views and the admin all ask ``require_fresh_factor`` before they change
a factor of any kind (a phone or email device, an authenticator app, recovery codes, and
any kind added later: ``has_any_factor`` is the single list). The rule:

* someone with no factor yet may add their first one: the password is all there is;
* someone with any factor must show a *fresh* second factor: a code checked with this
  very request (``proof``), or a session that passed a second factor within
  ``STEP_UP_MAX_AGE`` under the account's current security epoch.

Holding a verified credential is not enough: it proves a second factor *once*, maybe
long ago, maybe on a stolen token. In the admin, the staff member acting is the one who
must be fresh.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from ..constants import Purpose
from ..exceptions import StepUpRequiredError
from ..models import Device, RecoveryCode, TOTPDevice, WebAuthnCredential

__all__ = ["has_any_factor", "require_fresh_factor"]


def has_any_factor(user: Any) -> bool:
    """True when ``user`` has any confirmed factor, of any kind (one to four queries)."""
    user_id = user.pk
    return (
        Device.objects.filter(user_id=user_id, confirmed=True).exists()
        or TOTPDevice.objects.filter(user_id=user_id, confirmed=True).exists()
        or WebAuthnCredential.objects.filter(user_id=user_id).exists()
        or RecoveryCode.objects.filter(code_set__user_id=user_id, used_at__isnull=True).exists()
    )


def require_fresh_factor(
    request: HttpRequest | None,
    user: Any,
    *,
    proof: dict[str, Any] | None = None,
    session_counts: bool = True,
) -> None:
    """Raise ``StepUpRequiredError`` unless ``user`` may change a factor now.

    ``user`` is whoever acts: the account's owner, or in the admin the staff member.
    ``proof`` is a code sent with the request: ``{"challenge": id, "code": code}`` for a
    step-up challenge, ``{"code": code}`` for the user's authenticator app; it is checked
    (and spent) under the same limits and lockout as every code, and raises like them.
    ``session_counts`` says whether the request's session may stand in for a proof (not
    for a request authenticated by a token: a token is no proof of presence).
    """
    from .login import is_session_verified
    from .step_up import has_recent_step_up

    if not has_any_factor(user):
        return
    if proof:
        _check_proof(request, user, proof)
        return
    if (
        session_counts
        and request is not None
        and hasattr(request, "session")
        and is_session_verified(request, user)
        and has_recent_step_up(request, user)
    ):
        return
    raise StepUpRequiredError()


def _check_proof(request: HttpRequest | None, user: Any, proof: dict[str, Any]) -> None:
    from .challenges import verify_challenge
    from .totp import verify_totp

    if proof.get("challenge"):
        verify_challenge(
            proof["challenge"],
            proof.get("code"),
            purpose=Purpose.STEP_UP,
            user=user,
            request=request,
        )
    else:
        verify_totp(user, proof.get("code"), request=request)
