"""Device pages, step-up and the view guards (``otp_required``, ``OTPRequiredMixin``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.utils import timezone
from django.views import View

from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.exceptions import InvalidCodeError
from otp_auth.mixins import OTPRequiredMixin
from otp_auth.models import Challenge, Device
from tests.conftest import (
    PASSWORD,
    last_code,
    login_fully,
    otp_settings,
    password_step,
    pending_of,
    set_pending,
)
from tests.urls import urlpatterns as base_urlpatterns

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unique_codes")]

DEVICES = "/account/devices/"
ADD = "/account/devices/add/"
CONFIRM = "/account/devices/confirm/"
STEP_UP = "/account/step-up/"
VERIFY = "/account/login/verify/"
INVALID = str(InvalidCodeError.default_message)


class SecretView(OTPRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("secret")


class FreshSecretView(SecretView):
    otp_fresh = 300


urlpatterns = [
    *base_urlpatterns,
    path("secret/", SecretView.as_view()),
    path("fresh-secret/", FreshSecretView.as_view()),
]


def text(response: Any) -> str:
    return response.content.decode()


def remove_url(device: Device) -> str:
    return f"/account/devices/{device.pk}/remove/"


def email_code() -> str:
    match = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert match, "no code in the last email"
    return match[1]


def plain_login(client: Client, username: str = "alice") -> None:
    response = client.post("/plain-login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def step_up(client: Client, next_url: str = "") -> Any:
    """Ask for a step-up code and enter it; returns the final response."""
    client.post(STEP_UP, {"send": "1", "next": next_url})
    return client.post(STEP_UP, {"code": last_code()})


@pytest.fixture
def newcomer(client: Client, make_user: Any) -> Any:
    """Logged in with a password, no device yet: free to enroll a first one."""
    user = make_user(phone=None)
    password_step(client)
    return user


# List, add, confirm.


def test_device_list_shows_the_users_devices(client, make_user):
    user = make_user(email="alice@example.org")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    make_user("bob", phone="+233209999999")
    login_fully(client)

    page = text(client.get(DEVICES))

    assert "Phone (••••4567)" in page
    assert "Mail (a••••@example.org)" in page
    assert "9999" not in page


def test_add_phone_stores_e164_and_sends_an_enrollment_code(client, newcomer, outbox):
    assert client.get(ADD).status_code == 200

    response = client.post(ADD, {"channel": "sms", "phone": "024 123 4567", "name": "Work"})

    assert response.status_code == 302
    assert response["Location"] == CONFIRM
    device = Device.objects.get(user=newcomer)
    assert (device.phone_number, device.confirmed, device.name) == ("+233241234567", False, "Work")
    assert device.channels == ["sms", "voice"]
    assert len(outbox) == 1
    assert outbox[0].destination == "+233241234567"
    assert outbox[0].purpose == Purpose.ENROLLMENT
    assert "••••4567" in text(client.get(CONFIRM))


def test_confirm_with_the_code_confirms_the_device_and_verifies_the_session(client, newcomer):
    client.post(ADD, {"channel": "sms", "phone": "024 123 4567"})

    response = client.post(CONFIRM, {"code": last_code()})

    assert response.status_code == 302
    assert response["Location"] == DEVICES
    assert Device.objects.get(user=newcomer).confirmed
    assert client.get("/strict/").content == b"strict"


def test_confirm_with_a_wrong_code_is_a_form_error(client, newcomer):
    client.post(ADD, {"channel": "sms", "phone": "024 123 4567"})
    code = last_code()

    response = client.post(CONFIRM, {"code": "x"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [INVALID]}
    assert not Device.objects.get(user=newcomer).confirmed
    client.post(CONFIRM, {"code": code})
    assert Device.objects.get(user=newcomer).confirmed


def test_add_email_device(client, newcomer, outbox):
    response = client.post(ADD, {"channel": "email", "email": "Alice@Example.ORG"})

    assert response["Location"] == CONFIRM
    device = Device.objects.get(user=newcomer)
    assert (device.email, device.channels) == ("Alice@example.org", ["email"])
    assert outbox == []
    assert mail.outbox[-1].to == ["Alice@example.org"]
    client.post(CONFIRM, {"code": email_code()})
    device.refresh_from_db()
    assert device.confirmed


@pytest.mark.parametrize(
    "destination, allowed, error",
    [
        ("12345", None, "Enter a valid phone number or email address."),
        ("not a number", None, "Enter a valid phone number or email address."),
        ("+1 650 253 0000", ["GH"], "Phone numbers from this country are not supported."),
    ],
)
def test_bad_numbers_are_a_form_error_and_send_nothing(
    client, newcomer, outbox, destination, allowed, error
):
    with otp_settings(ALLOWED_COUNTRIES=allowed):
        response = client.post(ADD, {"channel": "sms", "phone": destination})

    assert response.status_code == 200
    assert response.context["form"].errors["phone"] == [error]
    assert outbox == []
    assert not Device.objects.exists()
    assert not Challenge.objects.exists()


def test_a_foreign_number_is_accepted_without_an_allow_list(client, newcomer, outbox):
    client.post(ADD, {"channel": "sms", "phone": "+1 650 253 0000"})

    assert Device.objects.get(user=newcomer).phone_number == "+16502530000"
    assert len(outbox) == 1


@pytest.mark.parametrize("enforce", [True, False], ids=["middleware", "view"])
def test_an_unverified_session_of_a_user_with_devices_cannot_add_or_confirm(
    client, user, outbox, enforce
):
    plain_login(client)
    with otp_settings(ENFORCE=enforce):
        get_add = client.get(ADD)
        get_confirm = client.get(CONFIRM)
        post_add = client.post(ADD, {"channel": "sms", "phone": "0201234567"})

    assert get_add.status_code == get_confirm.status_code == 302
    assert get_add["Location"].startswith(VERIFY)
    assert get_confirm["Location"].startswith(VERIFY)
    assert post_add.status_code in (302, 403)
    assert Device.objects.filter(user=user).count() == 1
    assert outbox == []


# Step-up for sensitive device changes.


def test_adding_a_second_device_needs_a_fresh_step_up(client, user, outbox, clock):
    login_fully(client)
    assert client.get(ADD).status_code == 200  # The login itself is fresh.

    clock.shift(301)
    get = client.get(ADD)
    post = client.post(ADD, {"channel": "sms", "phone": "0201234567"})

    assert get.status_code == post.status_code == 302
    assert get["Location"] == f"{STEP_UP}?next=%2Faccount%2Fdevices%2Fadd%2F"
    assert Device.objects.filter(user=user).count() == 1
    assert len(outbox) == 1

    step_up(client, ADD)
    client.post(ADD, {"channel": "sms", "phone": "0201234567"})

    assert Device.objects.filter(user=user).count() == 2


def test_step_up_max_age_setting_is_honoured(client, user, clock):
    login_fully(client)

    with otp_settings(STEP_UP_MAX_AGE=30):
        clock.shift(31)
        response = client.get(ADD)

    assert response["Location"].startswith(STEP_UP)


def test_removing_a_device_needs_a_fresh_step_up(client, make_user, outbox, clock):
    user = make_user(email="alice@example.org")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    login_fully(client)
    mail_device = Device.objects.get(user=user, phone_number="")
    clock.shift(301)

    refused = client.post(remove_url(mail_device))

    assert refused.status_code == 302
    assert refused["Location"] == f"{STEP_UP}?next=%2Faccount%2Fdevices%2F"
    assert Device.objects.filter(user=user).count() == 2

    page = client.get(refused["Location"])
    assert "Send me a code" in text(page)
    sent = client.post(STEP_UP, {"send": "1", "next": DEVICES})
    assert sent.status_code == 200
    challenge = Challenge.objects.order_by("-pk").first()
    assert (challenge.purpose, challenge.user) == (Purpose.STEP_UP, user)
    assert outbox[-1].purpose == Purpose.STEP_UP
    done = client.post(STEP_UP, {"code": last_code()})
    assert done["Location"] == DEVICES

    removed = client.post(remove_url(mail_device))

    assert removed["Location"] == DEVICES
    assert list(Device.objects.filter(user=user)) == [Device.objects.get(phone_number__gt="")]


def test_a_wrong_step_up_code_is_a_form_error(client, user, clock):
    login_fully(client)
    clock.shift(301)
    client.post(STEP_UP, {"send": "1"})

    response = client.post(STEP_UP, {"code": "000000x"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [INVALID]}
    assert client.get(ADD)["Location"].startswith(STEP_UP)


def test_another_users_device_cannot_be_removed(client, user, make_user):
    other = make_user("bob", phone="+233209999999")
    login_fully(client)

    client.post(remove_url(other.otp_devices.get()))

    assert other.otp_devices.count() == 1


def test_a_step_up_code_is_not_a_login_code(client, user, clock):
    login_fully(client)
    clock.shift(301)
    client.post(STEP_UP, {"send": "1"})
    step_up_code = last_code()
    step_up_id = client.session["_otp_auth_step_up_pending"]["challenge_id"]
    other = Client()
    password_step(other)
    set_pending(other, {**pending_of(other), "challenge_id": step_up_id})

    response = other.post(VERIFY, {"code": step_up_code})

    assert response.context["form"].errors == {"code": [INVALID]}
    assert other.get("/private/").status_code == 302
    assert Challenge.objects.get(public_id=step_up_id).status == ChallengeStatus.PENDING


def test_a_login_code_is_not_a_step_up_code(client, user, clock):
    login_fully(client)
    clock.shift(301)
    other = Client()
    password_step(other)
    login_code = last_code()
    login_id = pending_of(other)["challenge_id"]
    session = client.session
    session["_otp_auth_step_up_pending"] = {"challenge_id": login_id, "next_url": ""}
    session.save()

    response = client.post(STEP_UP, {"code": login_code})

    assert response.context["form"].errors == {"code": [INVALID]}
    assert client.get(ADD)["Location"].startswith(STEP_UP)
    assert Challenge.objects.get(public_id=login_id).status == ChallengeStatus.PENDING


# View guards.


def test_otp_required_fresh_demands_a_recent_step_up(client, user, clock):
    login_fully(client)
    assert client.get("/sensitive/").content == b"sensitive"

    clock.shift(301)
    refused = client.get("/sensitive/")

    assert refused["Location"] == f"{STEP_UP}?next=%2Fsensitive%2F"
    assert client.get("/strict/").content == b"strict"  # Verified, just not fresh.
    done = step_up(client, "/sensitive/")
    assert done["Location"] == "/sensitive/"
    assert client.get("/sensitive/").content == b"sensitive"


def test_otp_required_refuses_anonymous_and_unverified(client, user):
    anonymous = client.get("/sensitive/")
    plain_login(client)
    with otp_settings(ENFORCE=False):
        unverified = client.get("/sensitive/")

    assert anonymous["Location"] == "/account/login/?next=%2Fsensitive%2F"
    assert unverified["Location"] == f"{VERIFY}?next=%2Fsensitive%2F"


@pytest.mark.urls(__name__)
def test_otp_required_mixin(client, make_user, clock):
    make_user()
    make_user("carol", phone=None)

    assert client.get("/secret/")["Location"] == "/account/login/?next=%2Fsecret%2F"
    plain_login(client)
    with otp_settings(ENFORCE=False):
        assert client.get("/secret/")["Location"] == f"{VERIFY}?next=%2Fsecret%2F"
    newcomer = Client()
    plain_login(newcomer, "carol")
    assert newcomer.get("/secret/")["Location"] == f"{ADD}?next=%2Fsecret%2F"

    login_fully(client)
    assert client.get("/secret/").content == b"secret"
    assert client.get("/fresh-secret/").content == b"secret"
    clock.shift(301)
    assert client.get("/secret/").content == b"secret"
    assert client.get("/fresh-secret/")["Location"] == f"{STEP_UP}?next=%2Ffresh-secret%2F"
