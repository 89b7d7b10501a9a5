"""Arkesel (Ghana): deliver-only SMS and hosted verify (OTP API, SMS or voice).

``SMSProvider`` sends the message we rendered (our code, our hash) through the SMS API v2;
``VerifyProvider`` asks Arkesel's OTP API to generate, send and later check the code.

``OPTIONS`` for both:

* ``api_key`` (required): sent in the ``api-key`` header;
* ``sender_id`` (required): at most 11 characters, registered with Arkesel (system check
  ``otp_auth.E008``);
* ``base_url`` (``https://sms.arkesel.com``), ``connect_timeout``, ``read_timeout``;
* ``number_format``: how numbers go on the wire, ``"international"`` (``233241234567``,
  the default), ``"e164"`` (``+233241234567``) or ``"national"`` (``0241234567``).
  Arkesel's documentation accepts the first and the last; which one every account
  accepts is not documented, hence the option.

``SMSProvider`` also takes ``path`` (``/api/v2/sms/send``), ``sandbox`` (sends
``"sandbox": true``), ``use_case`` (``"transactional"``, needed for Nigerian numbers),
``callback_token`` (see ``otp_auth.webhooks``) and ``status_map`` (extra callback status
words). ``VerifyProvider`` takes ``generate_path`` (``/api/otp/generate``), ``verify_path``
(``/api/otp/verify``), ``message`` (must contain ``%otp_code%``; may contain ``%expiry%``),
``code_type`` (``"numeric"``) and ``expiry_minutes`` (by default ``CODE_TTL`` rounded up
to whole minutes). Arkesel documents neither the limits of ``expiry`` and ``length`` nor
the HTTP status of its errors, so errors are classified by the body's ``code`` first and
by the HTTP status second.
"""

from __future__ import annotations

import math
import string
from typing import Any, ClassVar

import phonenumbers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from ..conf import app_settings
from ..exceptions import (
    ConfigurationError,
    DestinationBlockedError,
    InvalidNumberError,
    ProviderAccountError,
    ProviderError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from .base import DeliveryResult, HostedVerification, OTPMessage
from .http import HttpProvider, HttpReply, StatusUpdate, callback_url

__all__ = ["SMSProvider", "VerifyProvider"]

NUMBER_FORMATS = ("international", "e164", "national")

#: OTP API result codes: (error class, reason, description). 1000 and 1100 are success.
OTP_CODES: dict[str, tuple[type[ProviderError], str, str]] = {
    "1001": (ProviderRejectedError, "", "validation error (missing field)"),
    "1002": (ProviderAccountError, "configuration", "message lacks the %otp_code% slot"),
    "1003": (ProviderAccountError, "sender", "sender id blocked by Arkesel"),
    "1004": (ProviderAccountError, "configuration", "SMS gateway not active or no credential"),
    "1005": (InvalidNumberError, "", "invalid phone number"),
    "1006": (DestinationBlockedError, "", "OTP not allowed in this country"),
    "1007": (ProviderAccountError, "insufficient_funds", "insufficient balance"),
    "1008": (ProviderAccountError, "insufficient_funds", "insufficient balance"),
    "1009": (ProviderAccountError, "configuration", "voice message over 500 characters"),
    "1011": (ProviderUnavailableError, "", "internal error"),
    "1101": (ProviderRejectedError, "", "validation error (missing field)"),
    "1102": (InvalidNumberError, "", "invalid phone number"),
    "1103": (InvalidNumberError, "", "invalid phone number"),
    "1106": (ProviderUnavailableError, "", "internal error"),
}
GENERATED = "1000"
VERIFIED = "1100"
#: Verify codes meaning "this code is not (or no longer) right": a refused code, not an error.
REFUSED = {"1104": "invalid code", "1105": "code expired"}

#: Delivery-callback words (Arkesel's list is not documented; ``status_map`` adds more).
CALLBACK_STATUSES = {
    "QUEUED": "queued",
    "SUBMITTED": "sent",
    "SENT": "sent",
    "DELIVERED": "delivered",
    "NOT_DELIVERED": "failed",
    "UNDELIVERED": "failed",
    "FAILED": "failed",
    "EXPIRED": "failed",
    "REJECTED": "failed",
    "PROHIBITED": "failed",
}


class _Arkesel(HttpProvider):
    provider_name: ClassVar[str] = "arkesel"
    base_url: ClassVar[str] = "https://sms.arkesel.com"
    required_options: ClassVar[tuple[str, ...]] = ("api_key", "sender_id")
    secret_options: ClassVar[tuple[str, ...]] = ("api_key", "callback_token")
    #: Read by the system check ``otp_auth.E008``.
    max_sender_id_length: ClassVar[int] = 11

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        self.sender_id = str(options["sender_id"])
        self.number_format = options.get("number_format", "international")
        if self.number_format not in NUMBER_FORMATS:
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['number_format'] must be one "
                f"of {NUMBER_FORMATS}, got {self.number_format!r}."
            )

    def headers(self) -> dict[str, str]:
        return {"api-key": str(self.options["api_key"]), "Accept": "application/json"}

    def wire_number(self, e164: str) -> str:
        """``e164`` in the configured ``number_format``."""
        if self.number_format == "e164":
            return e164
        if self.number_format == "national":
            try:
                parsed = phonenumbers.parse(e164, None)
            except phonenumbers.NumberParseException as exc:
                raise InvalidNumberError(provider=self.provider_name) from exc
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            return "".join(ch for ch in national if ch.isdigit())
        return e164.lstrip("+")

    def otp_error(self, reply: HttpReply, body: Any, redact: list[str]) -> ProviderError:
        """The error an OTP API reply means, from its ``code`` or else its HTTP status."""
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        excerpt = self.excerpt(reply.text, redact)
        if code in OTP_CODES:
            cls, reason, description = OTP_CODES[code]
            kwargs: dict[str, Any] = {
                "provider": self.provider_name,
                "status": reply.status,
                "vendor_code": code,
                "response": excerpt,
            }
            message = f"Arkesel {code}: {description}"
            if cls is ProviderAccountError:
                return ProviderAccountError(message, reason=reason, **kwargs)
            return cls(message, **kwargs)
        if not reply.ok:
            return self.error_for_status(
                reply, f"Arkesel HTTP {reply.status}", vendor_code=code, response=excerpt
            )
        return ProviderResponseError(
            f"Arkesel: unexpected result code {code!r}"[:120],
            provider=self.provider_name,
            status=reply.status,
            response=excerpt,
        )


class SMSProvider(_Arkesel):
    """Deliver-only SMS through ``POST /api/v2/sms/send``."""

    channels: ClassVar[frozenset[str]] = frozenset({"sms"})

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        self.path = options.get("path", "/api/v2/sms/send")
        self.status_map = {**CALLBACK_STATUSES, **dict(options.get("status_map") or {})}

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        number = self.wire_number(message.destination)
        body: dict[str, Any] = {
            "sender": self.sender_id,
            "message": message.text,
            "recipients": [number],
        }
        callback = callback_url("webhook_token", alias=self.alias, token=self.callback_token())
        if callback:
            body["callback_url"] = callback
        if self.options.get("sandbox"):
            body["sandbox"] = True
        if self.options.get("use_case"):
            body["use_case"] = str(self.options["use_case"])
        redact = [message.text]
        reply = self.request(
            "POST", self.path, json_body=body, headers=self.headers(), redact=redact
        )
        data = self.parse_json(reply, redact)
        if not isinstance(data, dict):
            raise ProviderResponseError(
                "Arkesel: reply is not an object", provider=self.provider_name, status=reply.status
            )
        excerpt = self.excerpt(reply.text, redact)
        if not reply.ok or data.get("status") != "success":
            raise self._sms_error(reply, data, excerpt)
        reference = ""
        for item in data.get("data") or []:
            if not isinstance(item, dict):
                continue
            # Rejected recipients come back in an object keyed "invalid numbers" (sic).
            if item.get("invalid numbers"):
                raise InvalidNumberError(
                    "Arkesel: invalid number",
                    provider=self.provider_name,
                    status=reply.status,
                    response=excerpt,
                )
            if item.get("id") and not reference:
                reference = str(item["id"])
        return DeliveryResult(
            provider=self.provider_name, status="queued", reference=reference, raw_status="success"
        )

    def _sms_error(self, reply: HttpReply, data: dict[str, Any], excerpt: str) -> ProviderError:
        # SMS v2 errors are {"status": "error", "message": "..."}; community clients map
        # 401/403 to credentials, 402 to balance and 422 to validation. With a 200, only
        # the wording tells, so a few words are recognised.
        text = str(data.get("message", "")).lower()
        kwargs: dict[str, Any] = {
            "provider": self.provider_name,
            "status": reply.status,
            "response": excerpt,
        }
        if reply.status == 402 or "balance" in text or "insufficient" in text:
            return ProviderAccountError(
                "Arkesel: insufficient balance", reason="insufficient_funds", **kwargs
            )
        if reply.status in (401, 403) or "api key" in text or "authenticat" in text:
            return ProviderAccountError(
                "Arkesel: authentication failed", reason="authentication", **kwargs
            )
        if "sender" in text:
            return ProviderAccountError("Arkesel: sender id refused", reason="sender", **kwargs)
        if "number" in text or "recipient" in text:
            return InvalidNumberError("Arkesel: invalid number", **kwargs)
        if not reply.ok:
            return self.error_for_status(reply, f"Arkesel HTTP {reply.status}", response=excerpt)
        return ProviderRejectedError("Arkesel: request refused", **kwargs)

    def parse_status_callback(self, request: HttpRequest, token: str | None) -> StatusUpdate:
        """Arkesel signs nothing: the callback is trusted only with our token in its path.

        It sends ``sms_id`` and ``status`` as query parameters (a GET, per community
        clients); a POSTed form is read too.
        """
        if not self.callback_token_matches(token):
            raise PermissionDenied("bad callback token")
        params = request.POST if request.method == "POST" else request.GET
        reference = params.get("sms_id", "")
        raw = params.get("status", "")
        if not reference or not raw:
            raise ValueError("sms_id and status are required")
        status = self.status_map.get(raw.upper(), "")
        return StatusUpdate(reference=reference[:128], status=status, raw_status=raw[:32])


class VerifyProvider(_Arkesel):
    """Hosted verify through the OTP API: Arkesel generates, sends and checks the code.

    The check is keyed by phone number only, so one number has one live code per Arkesel
    account; a new generate replaces the previous code.
    """

    hosted_verify: ClassVar[bool] = True
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "voice"})

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        self.generate_path = options.get("generate_path", "/api/otp/generate")
        self.verify_path = options.get("verify_path", "/api/otp/verify")
        self.template = options.get("message")
        if self.template is not None and "%otp_code%" not in str(self.template):
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['message'] must contain '%otp_code%'."
            )
        self.code_type = options.get("code_type", "numeric")
        if self.code_type not in ("numeric", "alphanumeric"):
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['code_type'] must be "
                "'numeric' or 'alphanumeric'."
            )

    def code_characters(self, reference: str = "") -> str | None:
        # Arkesel's alphanumeric codes use its own alphabet (0 and O, 1 and I included).
        if self.code_type == "alphanumeric":
            return string.digits + string.ascii_uppercase
        return string.digits

    def message_template(self) -> str:
        if self.template:
            return str(self.template)
        site = app_settings.SITE_NAME
        prefix = f"Your {site} code is" if site else "Your code is"
        return f"{prefix} %otp_code%. It expires in %expiry% minutes. Never share it."

    def start(self, verification: HostedVerification) -> DeliveryResult:
        expiry = self.options.get("expiry_minutes") or max(math.ceil(verification.ttl / 60), 1)
        body = {
            "expiry": int(expiry),
            "length": verification.code_length,
            "medium": "voice" if verification.channel == "voice" else "sms",
            "message": self.message_template(),
            "number": self.wire_number(verification.destination),
            "sender_id": self.sender_id,
            "type": self.code_type,
        }
        reply = self.request("POST", self.generate_path, json_body=body, headers=self.headers())
        data = self.parse_json(reply)
        code = str(data.get("code", "")) if isinstance(data, dict) else ""
        if reply.ok and code == GENERATED:
            # The OTP API returns no message id; the number is the handle at check time.
            return DeliveryResult(provider=self.provider_name, status="queued", raw_status=code)
        raise self.otp_error(reply, data, [])

    def check(self, reference: str, destination: str, code: str) -> bool:
        body = {"number": self.wire_number(destination), "code": code}
        redact = [code]
        reply = self.request(
            "POST", self.verify_path, json_body=body, headers=self.headers(), redact=redact
        )
        data = self.parse_json(reply, redact)
        result = str(data.get("code", "")) if isinstance(data, dict) else ""
        if reply.ok and result == VERIFIED:
            return True
        if result in REFUSED:
            return False
        raise self.otp_error(reply, data, redact)
