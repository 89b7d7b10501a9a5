"""Email provider: sends through Django's email framework (any ``EMAIL_BACKEND``).

Subject, text and HTML bodies come from templates rendered by ``otp_auth.services``
(``otp_auth/messages/email_subject.txt``, ``email.txt``, ``email.html``), which a site
overrides like any Django template.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.mail import EmailMultiAlternatives, get_connection

from ..exceptions import ProviderError
from .base import BaseProvider, DeliveryResult, OTPMessage

__all__ = ["EmailProvider"]


class EmailProvider(BaseProvider):
    """OPTIONS: ``from_email`` (default ``DEFAULT_FROM_EMAIL``); ``mailer`` (a ``MAILERS``
    alias, Django 6.1+) or ``backend`` (an email backend path, for Django before 6.1).
    Without either, Django's default mailer or ``EMAIL_BACKEND`` sends."""

    provider_name: ClassVar[str] = "email"
    channels: ClassVar[frozenset[str]] = frozenset({"email"})

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        self.from_email: str | None = options.get("from_email")
        self.backend: str | None = options.get("backend")
        self.mailer: str | None = options.get("mailer")

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=self.from_email,
            to=[message.destination],
            connection=get_connection(self.backend) if self.backend else None,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            sent = email.send(using=self.mailer) if self.mailer else email.send()
        except Exception as exc:  # SMTP and backend errors vary; all are delivery failures.
            raise ProviderError(
                "email delivery failed", provider=self.provider_name, response=type(exc).__name__
            ) from exc
        if not sent:
            raise ProviderError("email backend sent nothing", provider=self.provider_name)
        return DeliveryResult(provider=self.provider_name, status="sent")
