"""Fake Arkesel: SMS API v2 and the OTP API, as documented by the official SDK and the
community clients (see the providers research notes).

* ``POST /api/v2/sms/send``: ``{"status": "success", "data": [{"recipient", "id"}]}``,
  rejected numbers under the ``"invalid numbers"`` key (with a space);
* ``POST /api/otp/generate`` (alias ``/api/v2/otp/send``): ``{"code": "1000", ...}``;
  codes are strings; the generated code is kept in ``codes`` for tests;
* ``POST /api/otp/verify`` (alias ``/api/v2/otp/verify``): ``1100`` / ``1104`` / ``1105``.

Every route needs the ``api-key`` header (any case) and accepts JSON or form bodies.
``RESULTS`` holds the documented reply for every OTP result code, for scripting.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["RESULTS", "FakeArkesel", "SentSMS"]

RESULTS = {
    "1000": "Successful, OTP is being processed for delivery",
    "1001": "Validation error (Missing required field)",
    "1002": "Message must contain a slot for otp code, like %otp_code%",
    "1003": "This Sender ID have Blocked By Administrator",
    "1004": "SMS gateway not active or credential not found",
    "1005": "Invalid phone number",
    "1006": "OTP is not allowed in your Country",
    "1007": "Insufficient balance",
    "1008": "Insufficient balance",
    "1009": "You can not send more than 500 characters using voice medium",
    "1011": "Internal error",
    "1100": "Successful",
    "1101": "Validation error (Missing required field)",
    "1102": "Invalid phone number",
    "1103": "Invalid phone number",
    "1104": "Invalid code",
    "1105": "Code has expired",
    "1106": "Internal error",
}


VENDOR_ALPHABETS = {
    "numeric": string.digits,
    "alphanumeric": string.digits + string.ascii_uppercase,
}


def result(code: str, status: int = 200) -> Reply:
    """The documented reply for an OTP result code (200 by default, as clients observe)."""
    return Reply(status, {"code": code, "message": RESULTS[code]})


@dataclass
class SentSMS:
    recipient: str
    text: str
    sender: str
    id: str


class FakeArkesel(FakeServer):
    def __init__(self, api_key: str = "ark-test-key-0123456789", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.sent: list[SentSMS] = []
        self.codes: dict[str, tuple[str, float]] = {}  # number -> (code, expires at)
        self.otp_messages: list[tuple[str, str, str]] = []  # (number, medium, text)
        self.invalid_numbers: set[str] = set()
        #: Codes to hand out next (tests pin one); otherwise random ones.
        self.next_codes: list[str] = []
        self.state_lock = threading.Lock()

    def route(self, request: Recorded) -> Reply:
        if request.headers.get("api-key") != self.api_key:
            return Reply(401, {"status": "error", "message": "Invalid API key"})
        if request.method != "POST":
            return Reply(405, {"status": "error", "message": "Method not allowed"})
        data = request.data
        if request.path == "/api/v2/sms/send":
            return self.sms_send(data)
        if request.path in ("/api/otp/generate", "/api/v2/otp/send"):
            return self.otp_generate(data)
        if request.path in ("/api/otp/verify", "/api/v2/otp/verify"):
            return self.otp_verify(data)
        return Reply(404, {"status": "error", "message": "Not found"})

    def sms_send(self, data: dict[str, Any]) -> Reply:
        sender, text, recipients = data.get("sender"), data.get("message"), data.get("recipients")
        if not sender or not text or not isinstance(recipients, list) or not recipients:
            return Reply(422, {"status": "error", "message": "Validation error"})
        if len(str(sender)) > 11:
            return Reply(422, {"status": "error", "message": "Sender ID too long"})
        accepted: list[dict[str, Any]] = []
        invalid = [str(r) for r in recipients if str(r) in self.invalid_numbers]
        for recipient in recipients:
            if str(recipient) in self.invalid_numbers:
                continue
            sms = SentSMS(str(recipient), str(text), str(sender), str(uuid.uuid4()))
            with self.state_lock:
                self.sent.append(sms)
            if self.verbose:
                print(f"[fake arkesel] SMS from {sender} to {recipient}: {text}", flush=True)
            accepted.append({"recipient": sms.recipient, "id": sms.id})
        if invalid:
            accepted.append({"invalid numbers": invalid})
        return Reply(200, {"status": "success", "data": accepted})

    def otp_generate(self, data: dict[str, Any]) -> Reply:
        required = ("expiry", "length", "medium", "message", "number", "sender_id", "type")
        if any(data.get(name) in (None, "") for name in required):
            return result("1001")
        message = str(data["message"])
        if "%otp_code%" not in message:
            return result("1002")
        number = str(data["number"])
        digits = number.lstrip("+")
        if not digits.isdigit() or not 9 <= len(digits) <= 15 or number in self.invalid_numbers:
            return result("1005")
        length = int(data["length"])
        # The vendor's alphabet, not ours: alphanumeric codes may hold 0, O, 1 and I.
        alphabet = VENDOR_ALPHABETS.get(str(data["type"]), VENDOR_ALPHABETS["numeric"])
        with self.state_lock:
            pinned = self.next_codes.pop(0) if self.next_codes else None
        code = pinned or "".join(secrets.choice(alphabet) for _ in range(length))
        expires = time.monotonic() + 60 * int(data["expiry"])
        text = message.replace("%otp_code%", code).replace("%expiry%", str(data["expiry"]))
        with self.state_lock:
            self.codes[number] = (code, expires)
            self.otp_messages.append((number, str(data["medium"]), text))
        if self.verbose:
            print(f"[fake arkesel] OTP {data['medium']} to {number}: {text}", flush=True)
        return Reply(200, {"code": "1000", "ussd_code": "*928*01#", "message": RESULTS["1000"]})

    def otp_verify(self, data: dict[str, Any]) -> Reply:
        number, code = data.get("number"), data.get("code")
        if not number or not code:
            return result("1101")
        with self.state_lock:
            stored = self.codes.get(str(number))
            if stored is None or stored[1] < time.monotonic():
                self.codes.pop(str(number), None)
                return result("1105")
            if stored[0] != str(code):
                return result("1104")
            del self.codes[str(number)]
        return result("1100")

    def expire(self, number: str) -> None:
        """Make the live code for ``number`` expired."""
        with self.state_lock:
            code, _ = self.codes[number]
            self.codes[number] = (code, time.monotonic() - 1)
