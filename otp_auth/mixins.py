"""``OTPRequiredMixin`` for class-based views."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .decorators import otp_check

__all__ = ["OTPRequiredMixin"]


class OTPRequiredMixin:
    """Class-based twin of ``otp_required``; set ``otp_if_configured`` / ``otp_fresh``."""

    otp_if_configured: bool = False
    otp_fresh: int | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = otp_check(request, if_configured=self.otp_if_configured, fresh=self.otp_fresh)
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc,no-any-return]
