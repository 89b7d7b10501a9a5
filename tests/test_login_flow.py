"""The two-step login through HTTP: password, code, resend, switch, cancel and errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.exceptions import DeliveryError, InvalidCodeError
from otp_auth.models import Challenge, Device
from otp_auth.providers import locmem
from tests.conftest import (
    last_code,
    otp_settings,
    password_step,
    pending_of,
    set_pending,
    wrong_code,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unique_codes")]

LOGIN = "/account/login/"
VERIFY = "/account/login/verify/"
RESEND = "/account/login/resend/"
SWITCH = "/account/login/switch/"
CANCEL = "/account/login/cancel/"
INVALID = str(InvalidCodeError.default_message)


def text(response: Any) -> str:
    return response.content.decode()


def latest_challenge() -> Challenge:
    return Challenge.objects.order_by("-pk").first()  # type: ignore[return-value]


def is_logged_in(client: Any) -> bool:
    return client.get("/private/").status_code == 200


@pytest.fixture
def two_device_user(make_user: Any) -> Any:
    """A phone (used last, so it gets the first code) and an email address."""
    user = make_user(email="alice@example.org")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def test_password_step_redirects_to_verify_and_sends_one_code(client, user, outbox):
    response = password_step(client)

    assert response.status_code == 302
    assert response["Location"] == VERIFY
    assert len(outbox) == 1
    assert outbox[0].destination == "+233241234567"
    assert outbox[0].purpose == Purpose.LOGIN


def test_verify_page_shows_masked_destination_cooldown_and_other_devices(client, two_device_user):
    password_step(client)

    page = text(client.get(VERIFY))

    assert "••••4567" in page
    assert "+233241234567" not in page
    assert "(available in 60 s)" in page
    assert 'data-wait="60"' in page
    email_device = Device.objects.get(user=two_device_user, phone_number="")
    assert f'<option value="{email_device.pk}">Mail (a••••@example.org)</option>' in page
    assert "alice@example.org" not in page


def test_right_code_logs_in_and_goes_to_login_redirect_url(client, user):
    password_step(client)
    assert not is_logged_in(client)

    response = client.post(VERIFY, {"code": last_code()})

    assert response.status_code == 302
    assert response["Location"] == "/home/"
    assert client.get("/private/").content == b"private alice"
    assert latest_challenge().status == ChallengeStatus.VERIFIED


def test_login_redirect_url_setting_wins_over_djangos(client, user):
    with otp_settings(LOGIN_REDIRECT_URL="/welcome/"):
        password_step(client)
        response = client.post(VERIFY, {"code": last_code()})

    assert response["Location"] == "/welcome/"


def test_right_code_goes_to_a_safe_next(client, user):
    password_step(client, next="/strict/")

    response = client.post(VERIFY, {"code": last_code()})

    assert response["Location"] == "/strict/"
    assert client.get("/strict/").content == b"strict"


def test_wrong_code_is_a_form_error(client, user):
    password_step(client)

    response = client.post(VERIFY, {"code": wrong_code(last_code())})

    assert response.status_code == 200
    assert INVALID in text(response)
    assert response.context["form"].errors == {"code": [INVALID]}
    assert latest_challenge().attempts == 1
    assert not is_logged_in(client)


def test_five_wrong_codes_lock_the_challenge_and_refuse_the_right_code(client, user):
    password_step(client)
    code = last_code()
    for _ in range(4):
        response = client.post(VERIFY, {"code": wrong_code(code)})
        assert "locked" not in text(response)

    response = client.post(VERIFY, {"code": wrong_code(code)})

    assert response.status_code == 200
    assert "This code is now locked" in text(response)
    assert latest_challenge().status == ChallengeStatus.LOCKED

    response = client.post(VERIFY, {"code": code})

    assert response.status_code == 200
    assert "This code is now locked" in text(response)
    assert latest_challenge().attempts == 5
    assert not is_logged_in(client)


def test_resend_within_cooldown_sends_nothing_and_says_wait(client, user, outbox, clock):
    password_step(client)
    clock.shift(20)

    response = client.post(RESEND)

    assert response.status_code == 302
    assert response["Location"] == VERIFY
    assert len(outbox) == 1
    assert "Please wait 40 seconds before asking again." in text(client.get(VERIFY))
    assert latest_challenge().send_count == 1


def test_resend_after_cooldown_sends_a_new_code_and_the_old_one_stops(client, user, outbox, clock):
    password_step(client)
    old = last_code()
    clock.shift(61)

    response = client.post(RESEND)

    assert response.status_code == 302
    assert len(outbox) == 2
    assert "A new code is on its way." in text(client.get(VERIFY))
    new = last_code()
    response = client.post(VERIFY, {"code": old})
    assert INVALID in text(response)
    assert latest_challenge().attempts == 1

    client.post(VERIFY, {"code": new})

    assert is_logged_in(client)
    assert Challenge.objects.count() == 1


def test_switch_device_sends_the_code_to_the_other_device(client, two_device_user, outbox, clock):
    password_step(client)
    first = latest_challenge()
    sms_code = last_code()
    email_device = Device.objects.get(user=two_device_user, phone_number="")
    clock.shift(61)

    response = client.post(SWITCH, {"device": email_device.pk})

    assert response.status_code == 302
    assert response["Location"] == VERIFY
    first.refresh_from_db()
    assert first.status == ChallengeStatus.CANCELLED
    assert len(outbox) == 1
    assert mail.outbox[-1].to == ["alice@example.org"]
    second = latest_challenge()
    assert (second.device_id, second.channel) == (email_device.pk, "email")
    assert "a••••@example.org" in text(client.get(VERIFY))

    client.post(VERIFY, {"code": sms_code})
    assert not is_logged_in(client)
    client.post(VERIFY, {"code": re.search(r"\b(\d{6})\b", mail.outbox[-1].body)[1]})
    assert is_logged_in(client)


def test_switch_is_a_resend_cooldown_and_wrong_attempts_carry_over(
    client, two_device_user, outbox, clock
):
    password_step(client)
    client.post(VERIFY, {"code": wrong_code(last_code())})
    email_device = Device.objects.get(user=two_device_user, phone_number="")

    client.post(SWITCH, {"device": email_device.pk})

    assert mail.outbox == []
    assert latest_challenge().status == ChallengeStatus.PENDING
    assert "Please wait" in text(client.get(VERIFY))

    clock.shift(61)
    client.post(SWITCH, {"device": email_device.pk})

    assert len(mail.outbox) == 1
    assert latest_challenge().attempts == 1


def test_switch_to_another_users_device_is_refused(client, user, make_user, outbox, clock):
    other = make_user("bob", phone="+233201234567")
    password_step(client)
    clock.shift(61)

    client.post(SWITCH, {"device": other.otp_devices.get().pk})

    assert len(outbox) == 1
    assert latest_challenge().user == user
    assert latest_challenge().status == ChallengeStatus.PENDING


def test_cancel_discards_the_flow(client, user):
    password_step(client)
    code = last_code()

    response = client.post(CANCEL)

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert latest_challenge().status == ChallengeStatus.CANCELLED
    assert client.get(VERIFY)["Location"].startswith(LOGIN)
    response = client.post(VERIFY, {"code": code})
    assert response["Location"] == LOGIN
    assert not is_logged_in(client)


def test_user_without_a_device_logs_in_with_password_only_by_default(client, make_user, outbox):
    make_user(phone=None)

    response = password_step(client)

    assert response["Location"] == "/home/"
    assert client.get("/private/").content == b"private alice"
    assert outbox == []
    assert not Challenge.objects.exists()


def test_user_without_a_device_is_sent_to_enrollment_when_required(client, make_user):
    make_user(phone=None)

    with otp_settings(REQUIRE_ENROLLMENT=True):
        password_step(client)
        response = client.get("/private/")
        enroll = client.get("/account/devices/add/")

    assert response.status_code == 302
    assert response["Location"] == "/account/devices/add/?next=%2Fprivate%2F"
    assert enroll.status_code == 200


def test_provider_failure_at_the_password_step_is_a_generic_error(client, user, outbox):
    locmem.fail_next()

    response = password_step(client)

    assert response.status_code == 200
    page = text(response)
    assert str(DeliveryError.default_message) in page
    assert "primed failure" not in page
    assert outbox == []
    challenge = latest_challenge()
    assert challenge.status == ChallengeStatus.SEND_FAILED
    assert challenge.code_hash == ""
    assert "_auth_user_id" not in client.session
    assert not is_logged_in(client)
    assert client.get(VERIFY)["Location"].startswith(LOGIN)


def test_bad_password_shows_djangos_error_and_sends_nothing(client, user, outbox):
    response = password_step(client, password="wrong")

    assert response.status_code == 200
    assert "Please enter a correct username and password." in text(response)
    assert outbox == []
    assert not Challenge.objects.exists()


@pytest.mark.parametrize(
    "typed",
    [
        "12345",
        "1234567",
        "12345a",
        "１２３４５６",
        "١٢٣٤٥٦",
        "9" * 10_000,
        "",
        "<script>",
    ],
    ids=["short", "long", "letter", "fullwidth", "arabic", "10kB", "empty", "markup"],
)
def test_malformed_codes_get_the_standard_error_and_count(client, user, typed):
    password_step(client)

    response = client.post(VERIFY, {"code": typed})

    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [INVALID]}
    assert latest_challenge().attempts == 1


def test_a_missing_code_field_counts_as_a_wrong_code(client, user):
    password_step(client)

    response = client.post(VERIFY, {})

    assert response.context["form"].errors == {"code": [INVALID]}
    assert latest_challenge().attempts == 1


def test_spaces_and_dashes_in_the_right_code_are_forgiven(client, user):
    password_step(client)
    code = last_code()

    client.post(VERIFY, {"code": f" {code[:3]} -{code[3:]} "})

    assert is_logged_in(client)


def test_duplicate_code_fields_are_one_guess(client, user):
    password_step(client)
    code = last_code()
    guesses = [f"{n:06d}" for n in range(10) if f"{n:06d}" != code]

    client.post(VERIFY, {"code": guesses})

    assert latest_challenge().attempts == 1
    assert not is_logged_in(client)


def test_the_right_code_hidden_among_duplicates_is_never_a_second_guess(client, user):
    password_step(client)
    code = last_code()

    client.post(VERIFY, {"code": [wrong_code(code), code, wrong_code(wrong_code(code))]})

    attempts, logged_in = latest_challenge().attempts, is_logged_in(client)
    assert (attempts, logged_in) in {(0, True), (1, False)}


def _refusal(response: Any) -> tuple[int, list[str]]:
    return response.status_code, response.context["form"].errors["code"]


def test_wrong_expired_used_and_unknown_codes_look_the_same(
    client, make_user, django_user_model, clock
):
    from django.test import Client

    make_user()
    with otp_settings(CODE_TTL=60):
        # Wrong.
        password_step(client)
        wrong = _refusal(client.post(VERIFY, {"code": wrong_code(last_code())}))

        # Expired: the code outlived CODE_TTL, the flow is still within LOGIN_TIMEOUT.
        password_step(client)
        code = last_code()
        clock.shift(61)
        expired = _refusal(client.post(VERIFY, {"code": code}))
        assert latest_challenge().status == ChallengeStatus.EXPIRED

        # Already used: another session finished with this challenge first.
        password_step(client)
        code = last_code()
        pending = pending_of(client)
        other = Client()
        password_step(other)
        set_pending(other, {**pending_of(other), "challenge_id": pending["challenge_id"]})
        client.post(VERIFY, {"code": code})
        assert is_logged_in(client)
        used = _refusal(other.post(VERIFY, {"code": code}))

        # Unknown challenge id in the session.
        third = Client()
        password_step(third)
        code = last_code()
        set_pending(third, {**pending_of(third), "challenge_id": "x" * 43})
        unknown = _refusal(third.post(VERIFY, {"code": code}))

    assert wrong == expired == used == unknown == (200, [INVALID])
