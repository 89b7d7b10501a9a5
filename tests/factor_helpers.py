"""Helpers shared by the authenticator, recovery-code and trusted-browser tests."""

from __future__ import annotations

import re
import time
from typing import Any

from django.core import mail
from django.test import Client

from otp_auth import totp as otp
from otp_auth.encryption import decrypt_seed
from otp_auth.models import TOTPDevice
from otp_auth.services import totp as totp_service
from tests.conftest import PASSWORD

LOGIN = "/account/login/"
VERIFY = "/account/login/verify/"
SWITCH = "/account/login/switch/"
STEP_UP = "/account/step-up/"
DEVICES = "/account/devices/"
TOTP_ADD = "/account/authenticator/add/"
RECOVERY = "/account/recovery-codes/"
PASSWORD_CHANGE = "/account/password/"


def add_authenticator(
    user: Any, *, name: str = "Phone app", **fields: Any
) -> tuple[TOTPDevice, bytes]:
    """A confirmed authenticator app for ``user`` and its raw seed."""
    device = totp_service.create_device(user, name=name)
    device.confirmed = True
    for key, value in fields.items():
        setattr(device, key, value)
    device.save()
    return device, decrypt_seed(device.encrypted_seed)


def code_now(seed: bytes, *, offset_steps: int = 0, **options: Any) -> str:
    """The code an app with ``seed`` shows now (or ``offset_steps`` steps away)."""
    period = options.get("period", 30)
    return otp.totp(seed, time.time() + offset_steps * period, **options)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def plain_login(client: Client, username: str = "alice") -> None:
    """Password only, through Django's own LoginView: no second factor yet."""
    response = client.post("/plain-login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def is_logged_in(client: Client) -> bool:
    return client.get("/private/").status_code == 200


def notifications(subject_part: str) -> list[Any]:
    """Security notifications in Django's outbox whose subject contains ``subject_part``."""
    return [m for m in mail.outbox if subject_part in m.subject]


def secret_from_page(html: str) -> bytes:
    """The seed, read back from the ``otpauth://`` link of the setup page."""
    match = re.search(r'href="otpauth://totp/[^"?]+\?([^"]+)"', html)
    assert match, "no otpauth:// link on the page"
    params = dict(part.split("=", 1) for part in match.group(1).replace("&amp;", "&").split("&"))
    return otp.b32decode(params["secret"])
