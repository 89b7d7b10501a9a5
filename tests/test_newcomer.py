"""What someone meets in a new project: a mail server that is not there, a landing page."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings

from otp_auth.exceptions import DeliveryError, ProviderError
from otp_auth.services import notify

pytestmark = pytest.mark.django_db


class RefusingSMTP(BaseEmailBackend):
    """Like SMTP on a machine with no mail server: the connection is refused."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError(111, "Connection refused")


NO_MAIL_SERVER = override_settings(EMAIL_BACKEND="tests.test_newcomer.RefusingSMTP")


def test_provider_words_stay_with_operators() -> None:
    exc = ProviderError("email delivery failed", provider="email")
    assert exc.message == str(DeliveryError.default_message)
    assert exc.detail == "email delivery failed"
    assert "email delivery failed" in str(exc)


@NO_MAIL_SERVER
def test_email_enrollment_without_a_mail_server_shows_a_user_message(client, make_user) -> None:
    user = make_user(phone=None)
    client.force_login(user)
    response = client.post(
        "/account/devices/add/", {"channel": "email", "email": "alice@example.com"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "email delivery failed" not in page
    assert "We could not send your code right now" in page


@NO_MAIL_SERVER
def test_a_notification_that_cannot_be_sent_logs_one_line(make_user, caplog) -> None:
    user = make_user()
    with caplog.at_level(logging.DEBUG, logger="otp_auth"):
        assert notify.notify(user, "password_changed") == 0
    records = [r for r in caplog.records if "notification" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].exc_info is None
    assert "ConnectionRefusedError" in records[0].getMessage()


@pytest.mark.parametrize(
    ("target", "warned"),
    [
        ("/accounts/profile/", True),
        ("no_such_name", True),
        ("otp_auth:no_such_page", True),
        ("/home/", False),
        ("/home/?tab=1", False),
        ("home", False),
        ("otp_auth:devices", False),
        ("https://example.com/welcome", False),
    ],
)
def test_a_landing_page_that_is_a_404_is_reported(target: str, warned: bool) -> None:
    from otp_auth.checks import check_landing_page

    with override_settings(LOGIN_REDIRECT_URL=target):
        ids = [m.id for m in check_landing_page()]
    assert ids == (["otp_auth.W090"] if warned else [])
