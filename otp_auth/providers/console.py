"""Development provider: prints each message to the terminal.

This is the only place in ``otp_auth`` where a code is ever written out, and the system
check ``otp_auth.E005`` refuses it when ``DEBUG`` is off.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, ClassVar, TextIO

from .base import BaseProvider, DeliveryResult, OTPMessage

__all__ = ["ConsoleProvider"]


class ConsoleProvider(BaseProvider):
    provider_name: ClassVar[str] = "console"
    insecure: ClassVar[bool] = True

    def __init__(self, alias: str = "default", stream: TextIO | None = None, **options: Any):
        super().__init__(alias, **options)
        self.stream = stream
        self._lock = threading.Lock()

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        stream = self.stream or sys.stdout
        rule = "-" * 60
        with self._lock:
            stream.write(
                f"{rule}\n[otp_auth console] {message.channel} to {message.destination} "
                f"({message.purpose})\n"
            )
            if message.subject:
                stream.write(f"Subject: {message.subject}\n")
            stream.write(f"{message.text}\n{rule}\n")
            stream.flush()
        return DeliveryResult(provider=self.provider_name, status="sent")
