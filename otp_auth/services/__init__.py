"""The service layer: the only code that changes challenge state or calls providers.

Views, DRF views and the authentication backend call these functions and map their
results and exceptions to responses.
"""

from __future__ import annotations

from .challenges import (
    cancel_challenge,
    issue_challenge,
    resend_available_in,
    resend_challenge,
    verify_challenge,
)
from .devices import add_device, confirm_device, parse_phone_number, remove_device
from .login import (
    cancel_login,
    complete_login,
    get_pending_login,
    is_session_verified,
    start_login,
    switch_device,
)
from .step_up import complete_step_up, has_recent_step_up, start_step_up

__all__ = [
    "add_device",
    "cancel_challenge",
    "cancel_login",
    "complete_login",
    "complete_step_up",
    "confirm_device",
    "get_pending_login",
    "has_recent_step_up",
    "is_session_verified",
    "issue_challenge",
    "parse_phone_number",
    "remove_device",
    "resend_available_in",
    "resend_challenge",
    "start_login",
    "start_step_up",
    "switch_device",
    "verify_challenge",
]
