"""The shared HTTP base: timeouts, no retries, typed errors, JSON guard, redaction."""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import pytest

from otp_auth.exceptions import (
    ConfigurationError,
    ProviderAccountError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from otp_auth.providers.http import USER_AGENT, HttpProvider, callback_url
from tests.fakes import FakeServer, Reply


class PlainProvider(HttpProvider):
    provider_name: ClassVar[str] = "plain"
    base_url: ClassVar[str] = "https://api.example.invalid"
    secret_options: ClassVar[tuple[str, ...]] = ("token",)


@pytest.fixture
def fake() -> Any:
    with FakeServer() as server:
        yield server


def provider(fake: FakeServer, **options: Any) -> PlainProvider:
    return PlainProvider(
        alias="plain",
        base_url=fake.url,
        token="sekrit-token-value",
        connect_timeout=1,
        read_timeout=0.2,
        **options,
    )


def test_request_sends_user_agent_and_no_redirects(fake):
    fake.script(Reply(302, headers={"Location": "https://elsewhere.invalid/"}))
    reply = provider(fake).request("POST", "/send", json_body={"a": 1})
    assert reply.status == 302  # returned as is, never followed
    assert len(fake.requests) == 1
    assert fake.last.headers["user-agent"] == USER_AGENT
    assert fake.last.path == "/send"
    assert fake.last.json == {"a": 1}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_may_follow_acceptance_and_is_not_retried(fake, status):
    """Without the vendor's word that a status means "not processed", a 5xx (from a
    proxy, or after the write) leaves the outcome unknown, like a read timeout."""
    fake.script(Reply(status, body="<html>bad gateway sekrit-token-value</html>"))
    with pytest.raises(ProviderTimeoutError, match="after the request was sent") as info:
        provider(fake).request("POST", "/send")
    assert info.value.status == status
    assert "sekrit-token-value" not in info.value.response
    assert len(fake.requests) == 1


def test_documented_not_processed_status_is_unavailable(fake, monkeypatch):
    monkeypatch.setattr(HttpProvider, "not_processed_statuses", frozenset({503}))
    fake.script(Reply(503, body="<html>down for maintenance sekrit-token-value</html>"))
    with pytest.raises(ProviderUnavailableError) as info:
        provider(fake).request("POST", "/send")
    assert info.value.status == 503
    assert info.value.provider == "plain"
    assert "sekrit-token-value" not in info.value.response
    assert "[redacted]" in info.value.response
    assert len(fake.requests) == 1


def test_slow_reply_is_a_timeout_and_not_retried(fake):
    fake.script(Reply(200, {"ok": True}, delay=1.0))
    with pytest.raises(ProviderTimeoutError, match="no answer within 0.2 s"):
        provider(fake).request("POST", "/send")
    assert len(fake.requests) == 1


def test_connection_dropped_after_sending_is_a_timeout(fake):
    # The request reached the server: the outcome is unknown, so it is not "unavailable".
    fake.script(Reply(drop=True))
    with pytest.raises(ProviderTimeoutError, match="connection lost"):
        provider(fake).request("POST", "/send")
    assert len(fake.requests) == 1


def test_refused_connection_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    plain = PlainProvider(alias="plain", base_url=f"http://127.0.0.1:{port}", token="t")
    with pytest.raises(ProviderUnavailableError, match="could not connect"):
        plain.request("POST", "/send")


def test_malformed_json_is_a_response_error(fake):
    fake.script(Reply(200, body='{"status": "success", '))
    plain = provider(fake)
    reply = plain.request("POST", "/send")
    with pytest.raises(ProviderResponseError) as info:
        plain.parse_json(reply)
    assert info.value.status == 200


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (401, ProviderAccountError, "authentication"),
        (403, ProviderAccountError, "authentication"),
        (402, ProviderAccountError, "insufficient_funds"),
        (429, ProviderRateLimitError, None),
        (400, ProviderRejectedError, None),
    ],
)
def test_bare_status_codes_map_to_typed_errors(fake, status, error, reason):
    fake.script(Reply(status, {"message": "no"}))
    plain = provider(fake)
    reply = plain.request("POST", "/send")
    result = plain.error_for_status(reply, "refused")
    assert type(result) is error
    assert result.status == status
    if reason:
        assert result.reason == reason


def test_timeouts_come_from_settings_unless_options_say_otherwise(settings):
    plain = PlainProvider(alias="plain", token="t")
    assert plain.timeout == (5.0, 15.0)
    settings.OTP_AUTH = {**settings.OTP_AUTH, "HTTP_CONNECT_TIMEOUT": 2, "HTTP_READ_TIMEOUT": 7}
    assert plain.timeout == (2.0, 7.0)
    assert PlainProvider(alias="plain", connect_timeout=0.5, read_timeout=3).timeout == (0.5, 3.0)


@pytest.mark.parametrize(
    "options",
    [{"base_url": "ftp://x"}, {"connect_timeout": 0}, {"read_timeout": "10"}, {"read_timeout": -1}],
)
def test_bad_transport_options_are_configuration_errors(options):
    with pytest.raises(ConfigurationError):
        PlainProvider(alias="plain", **options)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (None, None),
        ("https://otp.example.com", "https://otp.example.com"),
        ("https://otp.example.com/", "https://otp.example.com"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("otp.example.com", ConfigurationError),
        ("https://otp.example.com/app", ConfigurationError),
        ("https://otp.example.com/?a=1", ConfigurationError),
        (42, ConfigurationError),
    ],
)
def test_webhook_base_url_setting(settings, value, ok):
    from otp_auth.conf import app_settings

    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": value}
    if ok is ConfigurationError:
        with pytest.raises(ConfigurationError):
            app_settings.WEBHOOK_BASE_URL  # noqa: B018
    else:
        assert ok == app_settings.WEBHOOK_BASE_URL


@pytest.mark.parametrize("value", [0, -1, 301, "5", True])
def test_http_timeouts_are_validated(settings, value):
    from otp_auth.conf import app_settings

    settings.OTP_AUTH = {**settings.OTP_AUTH, "HTTP_READ_TIMEOUT": value}
    with pytest.raises(ConfigurationError, match="HTTP_READ_TIMEOUT"):
        app_settings.HTTP_READ_TIMEOUT  # noqa: B018


def test_callback_url_comes_from_the_setting_only(settings):
    assert callback_url("webhook", alias="sms") is None
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": "https://otp.example.com"}
    assert callback_url("webhook", alias="sms") == "https://otp.example.com/account/webhooks/sms/"
    assert (
        callback_url("webhook_token", alias="sms", token="abc")
        == "https://otp.example.com/account/webhooks/sms/abc/"
    )


def test_callback_token_is_stable_per_alias_and_survives_key_rotation(settings):
    plain = PlainProvider(alias="plain")
    token = plain.callback_token()
    assert len(token) == 40
    assert token == PlainProvider(alias="plain").callback_token()
    assert token != PlainProvider(alias="other").callback_token()
    assert plain.callback_token_matches(token)
    assert not plain.callback_token_matches(token[:-1] + "0" if token[-1] != "0" else "1")
    assert not plain.callback_token_matches("")
    assert not plain.callback_token_matches(None)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert plain.callback_token() != token
    assert plain.callback_token_matches(token)  # callbacks in flight still count
    configured = PlainProvider(alias="plain", callback_token="mine-0123456789")
    assert configured.callback_token() == "mine-0123456789"
    assert not configured.callback_token_matches(token)


def test_plain_http_webhook_base_url_warns_in_production(settings):
    from otp_auth.checks import check_settings

    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": "http://otp.example.com"}
    assert "otp_auth.W003" in [m.id for m in check_settings()]
    settings.DEBUG = True
    assert "otp_auth.W003" not in [m.id for m in check_settings()]
    settings.DEBUG = False
    settings.OTP_AUTH = {**settings.OTP_AUTH, "WEBHOOK_BASE_URL": "https://otp.example.com"}
    assert "otp_auth.W003" not in [m.id for m in check_settings()]


def test_bad_new_settings_are_reported_by_the_checks(settings):
    from otp_auth.checks import check_settings

    settings.OTP_AUTH = {**settings.OTP_AUTH, "HTTP_CONNECT_TIMEOUT": "fast"}
    assert [m.id for m in check_settings()] == ["otp_auth.E007"]
