"""``OTPRequiredMixin`` for class-based views."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .decorators import otp_check

__all__ = ["OTPRequiredMixin"]


class OTPRequiredMixin:
    """Class-based twin of ``otp_required``; set ``otp_if_configured`` and ``otp_max_age``
    (``otp_fresh`` is its older name)."""

    otp_if_configured: bool = False
    otp_max_age: int | None = None
    otp_fresh: int | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = otp_check(
            request,
            if_configured=self.otp_if_configured,
            max_age=self.otp_max_age,
            fresh=self.otp_fresh,
        )
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc,no-any-return]
