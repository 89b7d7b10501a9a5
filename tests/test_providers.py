"""Providers: the built-in ones, the base class contract, signals and the registry."""

from __future__ import annotations

import io
import smtplib
from collections.abc import Iterator
from typing import Any, ClassVar

import django
import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings

from otp_auth.exceptions import ConfigurationError, ProviderError, SendCancelled
from otp_auth.providers import (
    BaseProvider,
    DeliveryResult,
    HostedVerification,
    OTPMessage,
    get_provider,
    locmem,
)
from otp_auth.providers.console import ConsoleProvider
from otp_auth.providers.email import EmailProvider
from otp_auth.providers.locmem import LocmemProvider
from otp_auth.signals import post_send, pre_send
from tests.conftest import otp_settings

SMS = OTPMessage(
    destination="+233241234567",
    text="Your code is 482913. It expires in 10 minutes.",
    channel="sms",
    purpose="login",
)
EMAIL = OTPMessage(
    destination="alice@example.com",
    text="Your code is 482913.",
    channel="email",
    purpose="login",
    subject="Your sign-in code",
    html="<p>Your code is <b>482913</b>.</p>",
)


class BrokenEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed: 482913")


class SilentEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        return 0


class KeyedProvider(BaseProvider):
    provider_name: ClassVar[str] = "keyed"
    required_options: ClassVar[tuple[str, ...]] = ("api_key", "sender_id")

    def deliver(self, message: OTPMessage) -> DeliveryResult:
        return DeliveryResult(provider=self.provider_name, reference="ref-1")


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every ``pre_send``/``post_send`` fired during the test, with its kwargs."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def on_pre(sender: Any, **kwargs: Any) -> None:
        calls.append(("pre", {"sender": sender, **kwargs}))

    def on_post(sender: Any, **kwargs: Any) -> None:
        calls.append(("post", {"sender": sender, **kwargs}))

    pre_send.connect(on_pre)
    post_send.connect(on_post)
    yield calls
    pre_send.disconnect(on_pre)
    post_send.disconnect(on_post)


# Console ---------------------------------------------------------------------------------


def test_console_prints_to_its_stream() -> None:
    stream = io.StringIO()
    result = ConsoleProvider(stream=stream).send(EMAIL)
    output = stream.getvalue()
    assert "482913" in output
    assert "alice@example.com" in output
    assert "Subject: Your sign-in code" in output
    assert result == DeliveryResult(provider="console", status="sent")


def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleProvider().send(SMS)
    assert "Your code is 482913" in capsys.readouterr().out


# Locmem ----------------------------------------------------------------------------------


def test_locmem_keeps_messages_in_its_outbox() -> None:
    provider = LocmemProvider()
    first = provider.send(SMS)
    second = provider.send(EMAIL)
    assert locmem.outbox == [SMS, EMAIL]
    assert (first.status, first.reference) == ("sent", "locmem-1")
    assert second.reference == "locmem-2"
    locmem.clear()
    assert locmem.outbox == []


def test_locmem_fail_next_fails_once_by_default() -> None:
    provider = LocmemProvider()
    locmem.fail_next()
    with pytest.raises(ProviderError):
        provider.send(SMS)
    assert locmem.outbox == []
    provider.send(SMS)
    assert locmem.outbox == [SMS]


def test_locmem_fail_next_with_an_error_and_a_count() -> None:
    provider = LocmemProvider()
    locmem.fail_next(TimeoutError("slow"), times=2)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            provider.send(SMS)
    assert provider.send(SMS).status == "sent"


# Email -----------------------------------------------------------------------------------


def test_email_provider_sends_through_django_mail(mailoutbox: list[Any]) -> None:
    result = EmailProvider(from_email="otp@example.com").send(EMAIL)
    assert result == DeliveryResult(provider="email", status="sent")
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.subject == "Your sign-in code"
    assert sent.body == EMAIL.text
    assert sent.to == ["alice@example.com"]
    assert sent.from_email == "otp@example.com"
    assert sent.alternatives == [(EMAIL.html, "text/html")]


def test_email_provider_without_html_sends_plain_text(mailoutbox: list[Any]) -> None:
    plain = OTPMessage(
        destination="bob@example.com", text="Code 111111", channel="email", purpose="login"
    )
    with override_settings(DEFAULT_FROM_EMAIL="site@example.com"):
        EmailProvider().send(plain)
    assert mailoutbox[0].alternatives == []
    assert mailoutbox[0].from_email == "site@example.com"


def test_email_provider_uses_the_backend_option(mailoutbox: list[Any]) -> None:
    provider = EmailProvider(backend=f"{__name__}.SilentEmailBackend")
    with pytest.raises(ProviderError, match="sent nothing"):
        provider.send(EMAIL)
    assert mailoutbox == []


def test_email_backend_exception_becomes_provider_error() -> None:
    provider = EmailProvider(alias="mail", backend=f"{__name__}.BrokenEmailBackend")
    with pytest.raises(ProviderError) as info:
        provider.send(EMAIL)
    error = info.value
    assert error.provider == "email"
    assert error.response == "SMTPServerDisconnected"
    assert isinstance(error.__cause__, smtplib.SMTPServerDisconnected)
    # The backend's own message may quote the mail; the error keeps only its class name.
    assert "482913" not in str(error)


# Base class ------------------------------------------------------------------------------


def test_missing_required_options_are_named() -> None:
    with pytest.raises(ConfigurationError) as info:
        KeyedProvider(alias="sms", api_key="", sender_id=None)
    text = str(info.value)
    assert "'api_key'" in text
    assert "'sender_id'" in text
    assert "['sms']" in text
    assert "KeyedProvider" in text
    with pytest.raises(ConfigurationError, match="'sender_id'") as info:
        KeyedProvider(api_key="k")
    assert "'api_key'" not in str(info.value)
    assert KeyedProvider(api_key="k", sender_id="Example").options == {
        "api_key": "k",
        "sender_id": "Example",
    }


def test_base_provider_methods_must_be_implemented() -> None:
    provider = BaseProvider()
    with pytest.raises(NotImplementedError):
        provider.deliver(SMS)
    with pytest.raises(NotImplementedError):
        provider.start(
            HostedVerification(
                destination="+233241234567", channel="sms", purpose="login", code_length=6, ttl=60
            )
        )
    with pytest.raises(NotImplementedError):
        provider.check("ref", "+233241234567", "123456")


def test_pre_send_can_cancel_delivery(received: list[Any]) -> None:
    def cancel(sender: Any, **kwargs: Any) -> None:
        raise SendCancelled

    pre_send.connect(cancel)
    try:
        result = LocmemProvider().send(SMS)
    finally:
        pre_send.disconnect(cancel)
    assert result == DeliveryResult(provider="locmem", status="cancelled")
    assert locmem.outbox == []
    assert [name for name, _ in received] == ["pre"]


def test_pre_and_post_send_fire_around_delivery(received: list[Any]) -> None:
    provider = LocmemProvider(alias="default")
    result = provider.send(SMS)
    assert [name for name, _ in received] == ["pre", "post"]
    pre, post = received[0][1], received[1][1]
    assert pre == {
        "sender": LocmemProvider,
        "signal": pre_send,
        "message": SMS,
        "provider": provider,
    }
    assert post["message"] is SMS
    assert post["provider"] is provider
    assert post["result"] is result


def test_post_send_does_not_fire_when_delivery_fails(received: list[Any]) -> None:
    locmem.fail_next()
    with pytest.raises(ProviderError):
        LocmemProvider().send(SMS)
    assert [name for name, _ in received] == ["pre"]


def test_reprs_hide_codes_destinations_and_options() -> None:
    for text in (repr(EMAIL), str(EMAIL)):
        assert "482913" not in text
        assert "alice@example.com" not in text
        assert "sign-in" not in text
        assert "email" in text
    verification = HostedVerification(
        destination="+233241234567", channel="sms", purpose="login", code_length=6, ttl=600
    )
    assert "233241234567" not in repr(verification)
    provider = KeyedProvider(alias="sms", api_key="sk_live_0123456789", sender_id="Example")
    assert repr(provider) == "<KeyedProvider alias='sms'>"
    email = EmailProvider(alias="mail", password="hunter2-smtp")
    assert "hunter2" not in repr(email)


def test_provider_error_str_has_no_response_body() -> None:
    error = ProviderError("refused", provider="arkesel", status=401, response="key sk_live_1 bad")
    assert str(error) == "refused provider=arkesel status=401"
    assert error.response == "key sk_live_1 bad"
    assert len(ProviderError(response="x" * 2000).response) == 500


# Registry --------------------------------------------------------------------------------


def test_get_provider_builds_each_alias_once() -> None:
    provider = get_provider("default")
    assert isinstance(provider, LocmemProvider)
    assert provider.alias == "default"
    assert get_provider("default") is provider
    email = get_provider("email")
    assert isinstance(email, EmailProvider)
    assert email.alias == "email"


def test_get_provider_cache_resets_on_override_settings() -> None:
    before = get_provider("default")
    stream = io.StringIO()
    console = "otp_auth.providers.console.ConsoleProvider"
    with otp_settings(PROVIDERS={"default": {"BACKEND": console, "OPTIONS": {"stream": stream}}}):
        inside = get_provider("default")
        assert isinstance(inside, ConsoleProvider)
        assert inside.stream is stream
    after = get_provider("default")
    assert isinstance(after, LocmemProvider)
    assert after is not before


def test_get_provider_passes_options() -> None:
    backend = f"{__name__}.KeyedProvider"
    with otp_settings(
        PROVIDERS={"sms": {"BACKEND": backend, "OPTIONS": {"api_key": "k", "sender_id": "S"}}}
    ):
        provider = get_provider("sms")
    assert isinstance(provider, KeyedProvider)
    assert provider.alias == "sms"
    assert provider.options == {"api_key": "k", "sender_id": "S"}


def test_get_provider_unknown_alias() -> None:
    with pytest.raises(ConfigurationError, match="'twilio'"):
        get_provider("twilio")


def test_get_provider_bad_backend() -> None:
    with (
        otp_settings(PROVIDERS={"default": {"BACKEND": "otp_auth.providers.nope.Provider"}}),
        pytest.raises(ConfigurationError, match="cannot be imported"),
    ):
        get_provider("default")
    with (
        otp_settings(PROVIDERS={"default": {"BACKEND": "io.StringIO"}}),
        pytest.raises(ConfigurationError, match="BaseProvider"),
    ):
        get_provider("default")


@pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS arrived in Django 6.1")
def test_email_provider_sends_through_a_mailers_alias(settings: Any) -> None:
    from django.core import mail

    settings.MAILERS = {
        "default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
        "otp": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
    }
    mail.outbox = []
    provider = EmailProvider(alias="mail", mailer="otp", from_email="otp@example.com")
    message = OTPMessage(
        destination="bob@example.com",
        text="Your code is 123456",
        channel="email",
        purpose="login",
        subject="Your code",
    )
    assert provider.send(message).status == "sent"
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
