"""Fake Twilio: Programmable Messaging, Voice calls and Verify v2.

Form-encoded requests with HTTP Basic auth (Account SID : Auth Token); JSON replies with
snake_case fields; errors as ``{"code", "message", "more_info", "status"}``.

* ``POST /2010-04-01/Accounts/{AC}/Messages.json`` and ``Calls.json`` -> 201 ``queued``;
* ``POST /v2/Services/{VA}/Verifications`` -> 201 ``pending`` (To needs ``+``: 60200;
  a sixth send to one number: 60203);
* ``POST /v2/Services/{VA}/VerificationCheck`` -> 200 ``approved`` or ``pending`` (a wrong
  code is not an error); unknown, expired or already approved: 404/20404; after five
  wrong codes: 429/60202; neither ``To`` nor ``VerificationSid``: 400/60221.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["FakeTwilio", "error"]

ERROR_STATUS = {
    20003: 401,
    20404: 404,
    20429: 429,
    21211: 400,
    21408: 400,
    21610: 400,
    21614: 400,
    60200: 400,
    60202: 429,
    60203: 429,
    60212: 429,
    60221: 400,
    60410: 403,
    60605: 403,
}


def error(code: int, message: str = "", status: int | None = None) -> Reply:
    """A Twilio error reply."""
    status = status or ERROR_STATUS.get(code, 400)
    return Reply(
        status,
        {
            "code": code,
            "message": message or f"Error {code}",
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Verification:
    sid: str
    to: str
    channel: str
    code: str
    status: str = "pending"
    wrong: int = 0
    sends: int = 1


@dataclass
class Outgoing:
    """A message or call Twilio accepted."""

    kind: str  # "sms" or "call"
    sid: str
    to: str
    params: dict[str, str] = field(repr=False)


class FakeTwilio(FakeServer):
    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "twilio-test-auth-token-abcdef0123",
        service_sid: str = "VA" + "1" * 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.service_sid = service_sid
        self.outgoing: list[Outgoing] = []
        self.verifications: dict[str, Verification] = {}
        self.state_lock = threading.Lock()

    def authorized(self, request: Recorded) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def route(self, request: Recorded) -> Reply:
        if not self.authorized(request):
            return error(20003, "Authenticate")
        if request.method != "POST":
            return error(20004, "Method not allowed", 405)
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return error(60200, "Invalid parameter")
        form = request.form
        account = f"/2010-04-01/Accounts/{self.account_sid}/"
        service = f"/v2/Services/{self.service_sid}/"
        if request.path == account + "Messages.json":
            return self.message(form)
        if request.path == account + "Calls.json":
            return self.call(form)
        if request.path == service + "Verifications":
            return self.verify_start(form)
        if request.path == service + "VerificationCheck":
            return self.verify_check(form)
        return error(20404, "The requested resource was not found")

    def message(self, form: dict[str, str]) -> Reply:
        to = form.get("To", "")
        if not to.startswith("+") or not to[1:].isdigit():
            return error(21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return error(21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not form.get("Body"):
            return error(21602, "Message body is required.")
        sent = Outgoing("sms", _sid("SM"), to, form)
        with self.state_lock:
            self.outgoing.append(sent)
        if self.verbose:
            print(f"[fake twilio] SMS to {to}: {form['Body']}", flush=True)
        return Reply(
            201,
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_segments": "1",
                "sid": sent.sid,
                "status": "queued",
                "to": to,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sent.sid}.json",
            },
        )

    def call(self, form: dict[str, str]) -> Reply:
        to = form.get("To", "")
        if not to.startswith("+") or not to[1:].isdigit():
            return error(21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From"):
            return error(21213, "A 'From' phone number is required.")
        if not form.get("Twiml") and not form.get("Url"):
            return error(21205, "Url or Twiml is required.")
        sent = Outgoing("call", _sid("CA"), to, form)
        with self.state_lock:
            self.outgoing.append(sent)
        if self.verbose:
            print(f"[fake twilio] call to {to}: {form.get('Twiml')}", flush=True)
        return Reply(
            201,
            {"sid": sent.sid, "status": "queued", "to": to, "from": form["From"]},
        )

    def verify_start(self, form: dict[str, str]) -> Reply:
        to, channel = form.get("To", ""), form.get("Channel", "")
        if channel not in ("sms", "call", "email", "whatsapp"):
            return error(60200, "Invalid parameter: Channel")
        valid_email = channel == "email" and "@" in to
        if not valid_email and (not to.startswith("+") or not to[1:].isdigit()):
            return error(60200, "Invalid parameter: To")
        with self.state_lock:
            current = next(
                (v for v in self.verifications.values() if v.to == to and v.status == "pending"),
                None,
            )
            if current is not None:
                # The same code is re-sent while it is valid; a sixth send is refused.
                if current.sends >= 5:
                    return error(60203, "Max send attempts reached")
                current.sends += 1
                current.channel = channel
                verification = current
            else:
                verification = Verification(
                    _sid("VE"), to, channel, "".join(secrets.choice("0123456789") for _ in "123456")
                )
                self.verifications[verification.sid] = verification
        if self.verbose:
            print(f"[fake twilio] Verify {channel} to {to}: {verification.code}", flush=True)
        return Reply(201, self._verification_body(verification))

    def verify_check(self, form: dict[str, str]) -> Reply:
        sid, to, code = form.get("VerificationSid"), form.get("To"), form.get("Code", "")
        if not sid and not to:
            return error(60221, "No target verification specified")
        with self.state_lock:
            if sid:
                verification = self.verifications.get(sid)
            else:
                verification = next((v for v in self.verifications.values() if v.to == to), None)
            if verification is None or verification.status != "pending":
                return error(20404, "The requested resource was not found")
            if verification.wrong >= 5:
                return error(60202, "Max check attempts reached")
            if code == verification.code:
                verification.status = "approved"
            else:
                verification.wrong += 1
            body = self._verification_body(verification)
            if verification.status == "approved":
                # Approved verifications are soft-deleted: a later check is a 404.
                del self.verifications[verification.sid]
        return Reply(200, body)

    def code_for(self, to: str) -> str:
        """The code the fake sent to ``to`` (what the user reads on the phone)."""
        with self.state_lock:
            for verification in self.verifications.values():
                if verification.to == to:
                    return verification.code
        raise KeyError(to)

    def _verification_body(self, verification: Verification) -> dict[str, Any]:
        return {
            "sid": verification.sid,
            "service_sid": self.service_sid,
            "account_sid": self.account_sid,
            "to": verification.to,
            "channel": verification.channel,
            "status": verification.status,
            "valid": verification.status == "approved",
            "date_created": "2015-07-30T20:00:00Z",
            "date_updated": "2015-07-30T20:00:00Z",
        }
