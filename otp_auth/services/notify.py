"""Security notifications by email: a factor added or removed, recovery codes regenerated
or used, the password changed or reset, and sign-ins paused after repeated wrong codes.

They go to the account's email address and to every confirmed email device, so a user
whose phone was taken over still hears about it. Messages name the event, the time and
the masked factor; never a code, a seed or a full phone number. The browser is named
from a fixed list of products ("Firefox on Windows", ``otp_auth.useragent``), never by
quoting the ``User-Agent`` header, which whoever triggered the message wrote. A failed
send is logged and never breaks the action that triggered it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from ..conf import app_settings
from ..models import Device
from ..useragent import describe
from ..utils import client_ip, user_agent

__all__ = ["EVENTS", "notification_addresses", "notify"]

logger = logging.getLogger("otp_auth")

EVENTS = frozenset(
    {
        "factor_added",
        "factor_removed",
        "recovery_codes_regenerated",
        "recovery_code_used",
        "password_changed",
        "password_reset",
        "account_locked",
    }
)


def notification_addresses(user: Any) -> list[str]:
    """The account's address, then its confirmed email devices, without duplicates."""
    addresses: list[str] = []
    field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else "email"
    own = getattr(user, field, "") or ""
    if own:
        addresses.append(own)
    for email in (
        Device.objects.confirmed().for_user(user).exclude(email="").values_list("email", flat=True)
    ):
        if email.lower() not in {a.lower() for a in addresses}:
            addresses.append(email)
    return addresses


def notify(user: Any, event: str, *, request: HttpRequest | None = None, **context: Any) -> int:
    """Email ``event`` to the user; returns the number of messages sent (0 when off).

    Templates: ``otp_auth/notifications/<event>_subject.txt`` and ``<event>.txt``.
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown notification {event!r}.")
    if not app_settings.NOTIFY_BY_EMAIL:
        return 0
    recipients = notification_addresses(user)
    if not recipients:
        return 0
    # Templates get the short description under both names: the header never reaches
    # them, so an overridden template cannot quote it either.
    browser = describe(user_agent(request)) if request is not None else ""
    values = {
        "user": user,
        "site_name": app_settings.SITE_NAME,
        "when": timezone.now(),
        "ip_address": client_ip(request),
        **context,
        "browser": browser,
        "user_agent": browser,
    }
    base = "otp_auth/notifications"
    subject = " ".join(render_to_string(f"{base}/{event}_subject.txt", values).split())
    body = render_to_string(f"{base}/{event}.txt", values).strip() + "\n"
    try:
        return send_mail(subject, body, None, recipients)
    except Exception as exc:
        # One line, no traceback: a site without a mail server (a new project, SMTP on
        # localhost) would otherwise print one per sign-in. The sign-in goes on.
        logger.warning(
            "otp_auth: could not send the %s notification to user pk=%s: %s",
            event,
            user.pk,
            type(exc).__name__,
        )
        return 0
