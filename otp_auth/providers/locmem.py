"""Test provider: keeps messages in ``outbox`` and can be primed to fail.

from otp_auth.providers import locmem
locmem.outbox[-1].text            # the last message
locmem.fail_next(ProviderError("down"))   # the next send raises
"""

from __future__ import annotations

import threading
from typing import ClassVar

from ..exceptions import ProviderError
from .base import BaseProvider, DeliveryResult, OTPMessage

__all__ = ["LocmemProvider", "clear", "fail_next", "outbox"]

outbox: list[OTPMessage] = []
_failures: list[BaseException] = []
_lock = threading.Lock()


def fail_next(error: BaseException | None = None, times: int = 1) -> None:
    """Make the next ``times`` sends raise ``error`` (a ``ProviderError`` by default)."""
    with _lock:
        for _ in range(times):
            _failures.append(error or ProviderError("primed failure", provider="locmem"))


def clear() -> None:
    """Empty the outbox and forget primed failures."""
    with _lock:
        outbox.clear()
        _failures.clear()


class LocmemProvider(BaseProvider):
    provider_name: ClassVar[str] = "locmem"
    insecure: ClassVar[bool] = True

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        with _lock:
            if _failures:
                raise _failures.pop(0)
            outbox.append(message)
            reference = f"locmem-{len(outbox)}"
        return DeliveryResult(provider=self.provider_name, status="sent", reference=reference)
