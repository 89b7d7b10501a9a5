"""Render a code into a message and hand it to a provider.

Provider failures of any kind come out as ``DeliveryError``; the logged line carries the
challenge id, provider alias and error class, never the code or the destination.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.template.loader import select_template

from ..conf import app_settings
from ..constants import Channel
from ..exceptions import DeliveryError, ProviderError
from ..providers import BaseProvider, DeliveryResult, HostedVerification, OTPMessage

if TYPE_CHECKING:
    from ..models import Challenge

__all__ = ["render_message", "send_code", "start_hosted"]

logger = logging.getLogger("otp_auth")


def _render(names: list[str], context: dict[str, object]) -> str:
    return str(select_template(names).render(context)).strip()


def render_message(challenge: Challenge, code: str, destination: str) -> OTPMessage:
    """Build the neutral message from templates a site can override.

    Looked up first per purpose (``otp_auth/messages/<purpose>/<channel>.txt``), then per
    channel (``otp_auth/messages/<channel>.txt``).
    """
    context: dict[str, object] = {
        "code": code,
        "purpose": challenge.purpose,
        "channel": challenge.channel,
        "minutes": max(app_settings.CODE_TTL // 60, 1),
        "site_name": app_settings.SITE_NAME,
    }
    base = "otp_auth/messages"
    text = _render(
        [f"{base}/{challenge.purpose}/{challenge.channel}.txt", f"{base}/{challenge.channel}.txt"],
        context,
    )
    subject = html = ""
    if challenge.channel == Channel.EMAIL:
        subject = " ".join(
            _render(
                [f"{base}/{challenge.purpose}/email_subject.txt", f"{base}/email_subject.txt"],
                context,
            ).split()
        )
        html = _render([f"{base}/{challenge.purpose}/email.html", f"{base}/email.html"], context)
    return OTPMessage(
        destination=destination,
        text=text,
        channel=challenge.channel,
        purpose=challenge.purpose,
        subject=subject,
        html=html,
        metadata={"challenge": challenge.public_id},
    )


def _guarded(challenge: Challenge, provider: BaseProvider, call: object) -> DeliveryResult:
    try:
        result = call()  # type: ignore[operator]
    except ProviderError as exc:
        logger.warning(
            "otp_auth: delivery failed for challenge pk=%s via %r: %s",
            challenge.pk,
            provider.alias,
            exc,
        )
        raise
    except Exception as exc:
        # A provider bug or a transport error: never a 500, never a half-done login.
        logger.exception(
            "otp_auth: provider %r raised %s for challenge pk=%s",
            provider.alias,
            type(exc).__name__,
            challenge.pk,
        )
        raise DeliveryError() from exc
    if not isinstance(result, DeliveryResult):
        raise DeliveryError()
    return result


def send_code(
    challenge: Challenge, provider: BaseProvider, code: str, destination: str
) -> DeliveryResult:
    """Deliver ``code`` for ``challenge`` through a deliver-only ``provider``."""
    message = render_message(challenge, code, destination)
    return _guarded(challenge, provider, lambda: provider.send(message))


def start_hosted(challenge: Challenge, provider: BaseProvider, destination: str) -> DeliveryResult:
    """Ask a hosted-verify ``provider`` to generate and send the code itself."""
    verification = HostedVerification(
        destination=destination,
        channel=challenge.channel,
        purpose=challenge.purpose,
        code_length=app_settings.CODE_LENGTH,
        ttl=app_settings.CODE_TTL,
        metadata={"challenge": challenge.public_id},
    )
    return _guarded(challenge, provider, lambda: provider.start(verification))
