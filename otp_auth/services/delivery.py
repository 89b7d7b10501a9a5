"""Render a code into a message and hand it to a provider.

Provider failures of any kind come out as ``DeliveryError``; the logged line carries the
challenge id, provider alias and error class, never the code or the destination.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import phonenumbers
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.template.loader import select_template
from django.utils import timezone

from ..conf import app_settings
from ..constants import PHONE_CHANNELS, Channel
from ..exceptions import CountryNotAllowedError, DeliveryError
from ..providers import BaseProvider, DeliveryResult, HostedVerification, OTPMessage
from ..providers.http import StatusUpdate
from ..providers.routing import Attempt, RoutedResult
from ..signals import delivery_failed, delivery_status_changed

if TYPE_CHECKING:
    from ..models import Challenge, DeliveryAttempt

__all__ = [
    "check_destination_allowed",
    "numeric_codes_only",
    "record_attempts",
    "refused_number",
    "record_status",
    "render_message",
    "render_text",
    "sms_units",
    "send_code",
    "start_hosted",
]

logger = logging.getLogger("otp_auth")


def _render(names: list[str], context: dict[str, object]) -> str:
    return str(select_template(names).render(context)).strip()


#: GSM 03.38: characters that cost one septet, and those that cost two (escape + char).
GSM7_BASIC = frozenset(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df"
    "\u00c9 !\"#\u00a4%&'()*+,-./0123456789:;<=>?\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "\u00c4\u00d6\u00d1\u00dc\u00a7\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1"
    "\u00fc\u00e0"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|\u20ac\f")


def sms_units(text: str) -> tuple[str, int, list[str]]:
    """``(encoding, length, offending)`` of an SMS: ``"gsm7"`` with its length in septets
    (one segment holds 160), or ``"ucs2"`` with its length in UTF-16 units (one segment
    holds 70) and the characters that forced it."""
    offending = sorted({ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED})
    if offending:
        return "ucs2", len(text.encode("utf-16-le")) // 2, offending
    return "gsm7", sum(2 if ch in GSM7_EXTENDED else 1 for ch in text), []


def render_text(purpose: str, channel: str, code: str) -> str:
    """The text of a code message: the templates a site can override, looked up first per
    purpose (``otp_auth/messages/<purpose>/<channel>.txt``), then per channel
    (``otp_auth/messages/<channel>.txt``); for SMS, the ``SMS_APP_HASH`` and
    ``SMS_ORIGIN`` lines follow (see ``sms_suffix``)."""
    context: dict[str, object] = {
        "code": code,
        "purpose": purpose,
        "channel": channel,
        "minutes": max(app_settings.code_ttl(purpose, channel) // 60, 1),
        "site_name": app_settings.SITE_NAME,
    }
    base = "otp_auth/messages"
    text = _render([f"{base}/{purpose}/{channel}.txt", f"{base}/{channel}.txt"], context)
    if channel == Channel.SMS:
        text = "\n".join([text, *sms_suffix(code)])
    return text


def sms_suffix(code: str) -> list[str]:
    """Lines after an SMS text: Android's SMS Retriever app hash, then the origin-bound
    line (``@example.com #123456``) that browsers' WebOTP and iOS/Android autofill read,
    which must be the last line."""
    lines = []
    if app_settings.SMS_APP_HASH:
        lines.append(app_settings.SMS_APP_HASH)
    if app_settings.SMS_ORIGIN:
        lines.append(f"@{app_settings.SMS_ORIGIN} #{code}")
    return lines


def render_message(challenge: Challenge, code: str, destination: str) -> OTPMessage:
    """Build the neutral message from templates a site can override (``render_text``)."""
    base = "otp_auth/messages"
    context: dict[str, object] = {
        "code": code,
        "purpose": challenge.purpose,
        "channel": challenge.channel,
        "minutes": max(app_settings.code_ttl(challenge.purpose, challenge.channel) // 60, 1),
        "site_name": app_settings.SITE_NAME,
    }
    text = render_text(challenge.purpose, challenge.channel, code)
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
        ttl=app_settings.code_ttl(challenge.purpose, challenge.channel),
    )


def numeric_codes_only() -> bool:
    """True when every code a user may be sent is digits: ours, and the hosted-verify
    vendors' (Arkesel's ``code_type="alphanumeric"`` is not); forms pick the keyboard."""
    if app_settings.CODE_ALPHABET != "0123456789":
        return False
    from ..providers import get_provider

    for alias in app_settings.PROVIDERS:
        try:
            characters = get_provider(alias).code_characters()
        except ImproperlyConfigured:
            continue
        if characters and not characters.isdigit():
            return False
    return True


def refused_number(number: phonenumbers.PhoneNumber) -> bool:
    """Whether ``number`` is of a type in ``REFUSED_NUMBER_TYPES`` (premium rate, shared
    cost, unknown ranges by default): the numbers SMS pumping earns from."""
    refused = app_settings.REFUSED_NUMBER_TYPES
    if not refused:
        return False
    kind = phonenumbers.number_type(number)
    return any(getattr(phonenumbers.PhoneNumberType, name) == kind for name in refused)


def check_destination_allowed(channel: str, destination: str) -> None:
    """Refuse a phone number outside ``ALLOWED_COUNTRIES`` or of a type in
    ``REFUSED_NUMBER_TYPES`` before any provider is called.

    Numbers are checked at enrollment too; this catches devices added before the
    settings changed and any caller that skips enrollment.
    """
    if channel not in PHONE_CHANNELS:
        return
    allowed = app_settings.ALLOWED_COUNTRIES
    if allowed is None and not app_settings.REFUSED_NUMBER_TYPES:
        return
    try:
        number = phonenumbers.parse(destination, None)
    except phonenumbers.NumberParseException as exc:
        raise CountryNotAllowedError() from exc
    if allowed is not None and phonenumbers.region_code_for_number(number) not in allowed:
        raise CountryNotAllowedError()
    if refused_number(number):
        raise CountryNotAllowedError()


def _guarded(challenge: Challenge, provider: BaseProvider, call: object) -> RoutedResult:
    """Run ``call``; always return or raise with the attempts made attached."""
    try:
        result = call()  # type: ignore[operator]
    except DeliveryError as exc:
        if not exc.attempts:
            exc.attempts = (Attempt.from_error(provider.alias, provider, exc),)
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
        error = DeliveryError()
        error.attempts = (Attempt.from_error(provider.alias, provider, exc),)
        raise error from exc
    if not isinstance(result, DeliveryResult):
        error = DeliveryError()
        error.attempts = (Attempt.from_error(provider.alias, provider, error),)
        raise error
    if isinstance(result, RoutedResult) and result.attempts:
        return result
    return RoutedResult(
        provider=result.provider,
        status=result.status,
        reference=result.reference,
        raw_status=result.raw_status,
        alias=provider.alias,
        attempts=(Attempt.from_result(provider.alias, result),),
    )


def send_code(
    challenge: Challenge, provider: BaseProvider, code: str, destination: str
) -> RoutedResult:
    """Deliver ``code`` for ``challenge`` through a deliver-only ``provider``."""
    message = render_message(challenge, code, destination)
    return _guarded(challenge, provider, lambda: provider.send(message))


def start_hosted(challenge: Challenge, provider: BaseProvider, destination: str) -> RoutedResult:
    """Ask a hosted-verify ``provider`` to generate and send the code itself."""
    verification = HostedVerification(
        destination=destination,
        channel=challenge.channel,
        purpose=challenge.purpose,
        code_length=app_settings.CODE_LENGTH,
        ttl=app_settings.code_ttl(challenge.purpose, challenge.channel),
        metadata={"challenge": challenge.public_id},
    )
    return _guarded(challenge, provider, lambda: provider.start(verification))


def record_attempts(challenge: Challenge, attempts: Iterable[Attempt]) -> list[DeliveryAttempt]:
    """Save the audit rows of a (saved) challenge's attempts in one query, then report
    each failed one through ``delivery_failed``; account problems are logged as errors."""
    from ..models import DeliveryAttempt

    now = timezone.now()
    rows = [
        DeliveryAttempt(
            challenge=challenge,
            created_at=now,
            provider_alias=a.alias[:64],
            provider_name=a.provider[:32],
            outcome=a.outcome,
            error_code=a.error[:64],
            vendor_code=a.vendor_code[:32],
            detail=a.detail[:128],
            http_status=a.http_status,
            reference=a.reference[:128],
            status=a.status[:32],
            raw_status=a.raw_status[:32],
        )
        for a in attempts
    ]
    if not rows:
        return rows
    if len(rows) == 1:
        # bulk_create() wraps even one row in its own transaction: three statements.
        rows[0].save(force_insert=True)
    else:
        DeliveryAttempt.objects.bulk_create(rows)
    for row in rows:
        if row.outcome in (DeliveryAttempt.ACCEPTED, DeliveryAttempt.SKIPPED):
            continue
        if row.error_code == "provider_account":
            logger.error(
                "otp_auth: provider %r needs an operator: %s (vendor code %s)",
                row.provider_alias,
                row.detail,
                row.vendor_code or "-",
            )
        delivery_failed.send(sender=DeliveryAttempt, challenge=challenge, attempt=row)
    return rows


#: Terminal statuses share a rank: the first one reported wins.
_RANKS = {"queued": 0, "sent": 1, "delivered": 2, "failed": 2}


def record_status(alias: str, update: StatusUpdate) -> DeliveryAttempt | None:
    """Apply an authenticated delivery-status webhook; ``None`` if no attempt matches.

    Idempotent and monotonic: a repeated or late callback (``sent`` after ``delivered``)
    changes nothing, and vendor words we do not know are ignored. The challenge shows the
    status of its latest accepted attempt.
    """
    from ..models import Challenge, DeliveryAttempt

    if update.status not in _RANKS:
        logger.info(
            "otp_auth: ignored unknown delivery status %r from %r", update.raw_status, alias
        )
        return None
    with transaction.atomic():
        attempt = (
            DeliveryAttempt.objects.select_for_update()
            .filter(provider_alias=alias, reference=update.reference)
            .exclude(reference="")
            .order_by("-pk")
            .first()
        )
        if attempt is None:
            return None
        if _RANKS[update.status] <= _RANKS.get(attempt.status, -1):
            return attempt
        attempt.status = update.status
        attempt.raw_status = update.raw_status
        if update.error_code:
            attempt.vendor_code = update.error_code
        attempt.status_updated_at = timezone.now()
        attempt.save(update_fields=["status", "raw_status", "vendor_code", "status_updated_at"])
        latest = (
            DeliveryAttempt.objects.filter(
                challenge_id=attempt.challenge_id, outcome=DeliveryAttempt.ACCEPTED
            )
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if latest == attempt.pk:
            Challenge.objects.filter(pk=attempt.challenge_id).update(delivery_status=update.status)
    delivery_status_changed.send(sender=DeliveryAttempt, attempt=attempt, status=update.status)
    return attempt
