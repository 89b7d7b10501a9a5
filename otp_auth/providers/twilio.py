"""Twilio: deliver-only SMS and voice (Programmable Messaging and Voice), and hosted verify
(Verify v2).

Requests are form-encoded with HTTP Basic auth (Account SID and Auth Token); numbers go
out in E.164 with the ``+``.

``OPTIONS`` for both: ``account_sid`` and ``auth_token`` (required), ``base_url``,
``connect_timeout``, ``read_timeout``.

``SMSProvider`` (``base_url`` ``https://api.twilio.com``) also takes ``from_number``
(a Twilio number or an alphanumeric sender; required for voice) or
``messaging_service_sid`` (SMS only), ``validity_period`` (seconds Twilio may queue an
SMS; by default the code's lifetime), ``voice`` and ``voice_language`` (for ``<Say>``).
A voice call carries its TwiML in the ``Twiml`` parameter of the request body, so the
code is never in a URL that Twilio fetches. With ``WEBHOOK_BASE_URL`` set, each message
and call asks for status callbacks, which ``otp_auth.webhooks`` checks against
``X-Twilio-Signature``; during an Auth Token rotation, ``auth_token_previous`` (a token or
a list) is accepted for callbacks too.

``VerifyProvider`` (``base_url`` ``https://verify.twilio.com``) also takes
``service_sid`` (required, ``VA...``), ``locale`` and ``channel_map`` (our channel to
Verify's, by default ``{"sms": "sms", "voice": "call", "email": "email"}``; map ``"sms"``
to ``"whatsapp"`` to send through WhatsApp). Set the Verify service's code length to
``OTP_AUTH["CODE_LENGTH"]``: codes of another length are refused before the check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from ..conf import app_settings
from ..exceptions import (
    ConfigurationError,
    DestinationBlockedError,
    InvalidNumberError,
    ProviderAccountError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderRouteError,
)
from .base import DeliveryResult, HostedVerification, OTPMessage
from .http import HttpProvider, HttpReply, StatusUpdate, callback_url

__all__ = ["SMSProvider", "VerifyProvider", "compute_signature"]

#: Twilio error codes: (error class, reason, description). Unlisted codes fall back to
#: the HTTP status. Twilio warns that code meanings evolve; these are the stable ones.
ERRORS: dict[int, tuple[type[ProviderError], str, str]] = {
    20003: (ProviderAccountError, "authentication", "authentication failed"),
    20005: (ProviderAccountError, "configuration", "account not active"),
    20429: (ProviderRateLimitError, "", "too many requests"),
    21211: (InvalidNumberError, "", "invalid 'To' number"),
    21214: (InvalidNumberError, "", "'To' number cannot be reached"),
    21217: (InvalidNumberError, "", "invalid phone number"),
    # 21401 names the sender ('From' not SMS-capable, or a bad alphanumeric id), not the
    # user's number; 21407: the sender's number type does not support SMS.
    21401: (ProviderAccountError, "sender", "'From' is not a valid SMS sender"),
    21407: (ProviderAccountError, "sender", "sender number type does not support SMS"),
    21408: (DestinationBlockedError, "", "permission to send to this region not enabled"),
    21210: (ProviderAccountError, "sender", "'From' number not verified"),
    21212: (ProviderAccountError, "sender", "invalid 'From' number"),
    21606: (ProviderAccountError, "sender", "'From' number cannot send messages"),
    21608: (ProviderAccountError, "configuration", "trial account: 'To' number not verified"),
    21610: (DestinationBlockedError, "", "recipient unsubscribed"),
    # The To/From pair cannot be connected by Twilio: another vendor may deliver.
    21612: (ProviderRouteError, "", "'To' and 'From' cannot be connected"),
    21614: (InvalidNumberError, "", "'To' number cannot receive SMS"),
    21215: (DestinationBlockedError, "", "geo permissions do not allow this call"),
    21635: (InvalidNumberError, "", "'To' number is a landline"),
    13224: (InvalidNumberError, "", "number cannot be called"),
    60006: (InvalidNumberError, "", "number invalid or inactive (carrier lookup)"),
    60033: (InvalidNumberError, "", "invalid phone number"),
    60200: (ProviderRejectedError, "", "invalid parameter"),
    60203: (ProviderRateLimitError, "", "max send attempts reached"),
    60205: (InvalidNumberError, "", "SMS not supported by a landline"),
    60212: (ProviderRateLimitError, "", "too many concurrent requests for this number"),
    60221: (ProviderRejectedError, "", "no verification target"),
    60238: (DestinationBlockedError, "", "verification blocked by Twilio"),
    60410: (DestinationBlockedError, "", "blocked by Fraud Guard"),
    60413: (DestinationBlockedError, "", "verification blocked by Twilio for this destination"),
    60605: (DestinationBlockedError, "", "blocked by Verify geo permissions"),
}
#: Check replies meaning "this code is not (or no longer) right", not an error.
CHECK_REFUSED = {20404: "verification not found (expired or used)", 60202: "max check attempts"}

MESSAGE_STATUSES = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
CALL_STATUSES = {
    "queued": "queued",
    "initiated": "queued",
    "ringing": "sent",
    "in-progress": "sent",
    "completed": "delivered",
    "busy": "failed",
    "no-answer": "failed",
    "failed": "failed",
    "canceled": "failed",
}


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` for ``url`` and POST ``params``: HMAC-SHA1 keyed with the
    Auth Token over the URL followed by each name and value, sorted by name (repeated
    names by value), base64-encoded.

    A name sent twice with the same value counts once, as in Twilio's own validators:
    ``sorted(set(...))``, not ``sorted(...)``.
    """
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    # Twilio signs with or without the default port depending on the product, so its
    # own helpers accept both forms.
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if parts.port is None:
        with_port = parts._replace(netloc=f"{parts.netloc}:{default}")
        return [url, urlunsplit(with_port)]
    return [url, urlunsplit(parts._replace(netloc=host))]


def _is_json(request: HttpRequest) -> bool:
    # Decided by the signed URL, never by the unsigned Content-Type header.
    return "bodySHA256" in request.GET


def _callback_fields(request: HttpRequest) -> dict[str, str]:
    """A callback's fields, from the form or (signed with ``bodySHA256``) a JSON object;
    ``ValueError`` when a JSON body is not an object."""
    if not _is_json(request):
        return {key: request.POST.get(key, "") for key in request.POST}
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        raise ValueError("malformed JSON callback") from exc
    if not isinstance(data, dict):
        raise ValueError("a JSON callback must be an object")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int)}


class _Twilio(HttpProvider):
    provider_name: ClassVar[str] = "twilio"
    #: Twilio: "a 429 is never processed"; a 503 is its documented "service unavailable".
    not_processed_statuses: ClassVar[frozenset[int]] = frozenset({503})
    required_options: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")
    secret_options: ClassVar[tuple[str, ...]] = ("auth_token", "auth_token_previous")

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        previous = options.get("auth_token_previous") or []
        if isinstance(previous, str):
            previous = [previous]
        if not isinstance(previous, list | tuple) or not all(
            isinstance(token, str) and token for token in previous
        ):
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['auth_token_previous'] must be "
                "a token or a list of tokens."
            )
        self.previous_tokens: list[str] = list(previous)

    def secrets(self) -> list[str]:
        return [*super().secrets(), *self.previous_tokens]

    def signing_tokens(self) -> list[str]:
        """Tokens a callback may be signed with: the current one, then any previous one
        still accepted while Twilio's rotation window is open."""
        return [str(self.options["auth_token"]), *self.previous_tokens]

    @property
    def auth(self) -> tuple[str, str]:
        return str(self.options["account_sid"]), str(self.options["auth_token"])

    def post(self, path: str, form: dict[str, str], redact: list[str]) -> tuple[HttpReply, Any]:
        reply = self.request("POST", path, form=form, auth=self.auth, redact=redact)
        return reply, self.parse_json(reply, redact)

    def api_error(self, reply: HttpReply, body: Any, redact: list[str]) -> ProviderError:
        """The error a Twilio error body (``{code, message, more_info, status}``) means."""
        code = body.get("code") if isinstance(body, dict) else None
        excerpt = self.excerpt(reply.text, redact)
        kwargs: dict[str, Any] = {
            "provider": self.provider_name,
            "status": reply.status,
            "vendor_code": str(code or ""),
            "response": excerpt,
        }
        if isinstance(code, int) and code in ERRORS:
            cls, reason, description = ERRORS[code]
            message = f"Twilio {code}: {description}"
            if code == 60200 and "Invalid parameter: To" in str(body.get("message", "")):
                return InvalidNumberError(message, **kwargs)
            if cls is ProviderAccountError:
                return ProviderAccountError(message, reason=reason, **kwargs)
            return cls(message, **kwargs)
        if reply.ok:
            return ProviderResponseError("Twilio: unexpected reply", **kwargs)
        return self.error_for_status(
            reply, f"Twilio HTTP {reply.status}", vendor_code=str(code or ""), response=excerpt
        )


class SMSProvider(_Twilio):
    """Deliver-only SMS (``Messages.json``) and voice calls (``Calls.json``)."""

    base_url: ClassVar[str] = "https://api.twilio.com"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "voice"})

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        if not options.get("from_number") and not options.get("messaging_service_sid"):
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS'] is missing 'from_number' or "
                "'messaging_service_sid' for SMSProvider."
            )
        self.status_map = {**MESSAGE_STATUSES, **CALL_STATUSES}

    def account_path(self, resource: str) -> str:
        return f"/2010-04-01/Accounts/{self.options['account_sid']}/{resource}.json"

    def validity_period(self, message: OTPMessage) -> int | None:
        """Seconds Twilio may keep the SMS queued: ``OPTIONS["validity_period"]``, else the
        code's lifetime, so that a code never arrives after it expired (Twilio's own
        default is 36,000 s). Twilio accepts 1 to 36,000."""
        configured = self.options.get("validity_period")
        seconds = configured if configured else message.ttl
        if not seconds:
            return None
        return min(max(int(seconds), 1), 36_000)

    def twiml(self, text: str) -> str:
        """TwiML that reads ``text`` aloud; it travels in the request body only."""
        attrs = ""
        if self.options.get("voice"):
            attrs += f" voice={quoteattr(str(self.options['voice']))}"
        if self.options.get("voice_language"):
            attrs += f" language={quoteattr(str(self.options['voice_language']))}"
        return f"<Response><Say{attrs}>{escape(text)}</Say></Response>"

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        form: dict[str, str] = {"To": message.destination}
        callback = callback_url("webhook", alias=self.alias)
        if message.channel == "voice":
            if not self.options.get("from_number"):
                raise ProviderAccountError(
                    "Twilio: voice calls need 'from_number'",
                    reason="configuration",
                    provider=self.provider_name,
                )
            form["From"] = str(self.options["from_number"])
            form["Twiml"] = self.twiml(message.text)
            resource = "Calls"
        else:
            if self.options.get("messaging_service_sid"):
                form["MessagingServiceSid"] = str(self.options["messaging_service_sid"])
            if self.options.get("from_number"):
                form["From"] = str(self.options["from_number"])
            form["Body"] = message.text
            validity = self.validity_period(message)
            if validity:
                form["ValidityPeriod"] = str(validity)
            resource = "Messages"
        if callback:
            form["StatusCallback"] = callback
        redact = [message.text]
        reply, body = self.post(self.account_path(resource), form, redact)
        if not reply.ok:
            raise self.api_error(reply, body, redact)
        if not isinstance(body, dict) or not body.get("sid"):
            raise ProviderResponseError(
                "Twilio: reply without sid", provider=self.provider_name, status=reply.status
            )
        raw = str(body.get("status", ""))
        return DeliveryResult(
            provider=self.provider_name,
            status=self.status_map.get(raw, "queued"),
            reference=str(body["sid"]),
            raw_status=raw,
        )

    def signature_valid(self, request: HttpRequest) -> bool:
        """Check ``X-Twilio-Signature`` against the public URL from ``WEBHOOK_BASE_URL``
        (never the ``Host`` header) and the POSTed parameters, in constant time, with the
        Auth Token and any ``auth_token_previous``.

        A JSON callback signs the URL alone, which carries ``bodySHA256``: the hex SHA-256
        of the raw body, checked first.
        """
        signature = request.headers.get("X-Twilio-Signature", "")
        base = app_settings.WEBHOOK_BASE_URL
        if not signature or not base:
            return False
        url = f"{base}{request.get_full_path()}"
        if _is_json(request):
            expected = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(expected.encode(), request.GET["bodySHA256"].encode()):
                return False
            params: list[tuple[str, str]] = []
        else:
            params = [(k, v) for k, values in request.POST.lists() for v in values]
        matched = False
        for auth_token in self.signing_tokens():
            for candidate in _url_variants(url):
                computed = compute_signature(auth_token, candidate, params)
                matched |= hmac.compare_digest(computed.encode(), signature.encode())
        return matched

    def parse_status_callback(self, request: HttpRequest, token: str | None) -> StatusUpdate:
        if request.method != "POST" or not self.signature_valid(request):
            raise PermissionDenied("bad Twilio signature")
        params = _callback_fields(request)
        reference = params.get("MessageSid") or params.get("SmsSid") or params.get("CallSid")
        raw = params.get("MessageStatus") or params.get("SmsStatus") or params.get("CallStatus")
        if not reference or not raw:
            raise ValueError("a sid and a status are required")
        return StatusUpdate(
            reference=reference[:128],
            status=self.status_map.get(raw, ""),
            raw_status=raw[:32],
            error_code=params.get("ErrorCode", "")[:32],
        )


class VerifyProvider(_Twilio):
    """Hosted verify through Verify v2: Twilio generates, sends and checks the code."""

    base_url: ClassVar[str] = "https://verify.twilio.com"
    hosted_verify: ClassVar[bool] = True
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "voice", "email"})
    required_options: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token", "service_sid")
    VERIFY_CHANNELS: ClassVar[frozenset[str]] = frozenset(
        {"sms", "call", "email", "whatsapp", "sna", "auto"}
    )

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        self.channel_map = {
            "sms": "sms",
            "voice": "call",
            "email": "email",
            **dict(options.get("channel_map") or {}),
        }
        bad = [v for v in self.channel_map.values() if v not in self.VERIFY_CHANNELS]
        if bad:
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['channel_map'] has unknown "
                f"Verify channel(s) {bad}."
            )

    def code_characters(self, reference: str = "") -> str | None:
        return "0123456789"  # Verify codes are digits (4 to 10 of them)

    def service_path(self, resource: str) -> str:
        return f"/v2/Services/{self.options['service_sid']}/{resource}"

    def start(self, verification: HostedVerification) -> DeliveryResult:
        form = {
            "To": verification.destination,
            "Channel": self.channel_map.get(verification.channel, verification.channel),
        }
        if self.options.get("locale"):
            form["Locale"] = str(self.options["locale"])
        reply, body = self.post(self.service_path("Verifications"), form, [])
        if not reply.ok:
            if isinstance(body, dict) and body.get("code") == 20404:
                # At start a 404 can only mean the service: a wrong or deleted service_sid.
                raise ProviderAccountError(
                    "Twilio 20404: Verify service not found (check 'service_sid')",
                    reason="configuration",
                    provider=self.provider_name,
                    status=reply.status,
                    vendor_code="20404",
                    response=self.excerpt(reply.text),
                )
            raise self.api_error(reply, body, [])
        if not isinstance(body, dict) or not body.get("sid"):
            raise ProviderResponseError(
                "Twilio: reply without sid", provider=self.provider_name, status=reply.status
            )
        return DeliveryResult(
            provider=self.provider_name,
            status="sent",
            reference=str(body["sid"]),
            raw_status=str(body.get("status", "")),
        )

    def check(self, reference: str, destination: str, code: str) -> bool:
        form = {"Code": code}
        if reference:
            form["VerificationSid"] = reference
        else:
            form["To"] = destination
        redact = [code]
        reply, body = self.post(self.service_path("VerificationCheck"), form, redact)
        if reply.ok and isinstance(body, dict) and "status" in body:
            # A wrong code is a 200 with status "pending", not an error.
            return bool(body["status"] == "approved")
        vendor = body.get("code") if isinstance(body, dict) else None
        if not reply.ok and vendor in CHECK_REFUSED:
            return False
        raise self.api_error(reply, body, redact)
