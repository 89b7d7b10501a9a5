"""Malformed requests get a 400 with field errors, never a 500 or a free guess (R35, R36,
R71); every error has the ``{"code", "detail"}`` shape."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rest_framework")

from otp_auth.models import Challenge  # noqa: E402
from tests.api.conftest import DEVICES, LOGIN, VERIFY, log_in, start  # noqa: E402
from tests.conftest import PASSWORD, last_code  # noqa: E402

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": 123456}, "code"),
        ({"code": ["111111", "222222"]}, "code"),
        ({"code": None}, "code"),
        ({"code": {"$ne": ""}}, "code"),
        ({}, "code"),
        ({"code": "123456", "challenge": 42}, "challenge"),
        ({"code": "123456", "challenge": "x" * 2000}, "challenge"),
    ],
)
def test_malformed_verify_bodies_are_400_and_cost_no_attempt(api, user, body, field):
    # R36: a number, a list or a missing field is one field error, never several guesses.
    challenge = start(api)
    response = api.post(VERIFY, {"challenge": challenge, **body})
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid" and set(error) == {"code", "detail", "fields"}
    assert field in error["fields"]
    assert Challenge.objects.get().attempts == 0


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"code"', b"{not json", b"null", b"\xff\xfe"],
)
def test_a_body_that_is_not_a_json_object_is_400(api, user, payload):
    response = api.generic("POST", LOGIN, payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid", "parse_error")


def test_form_encoded_bodies_are_refused(api, user):
    response = api.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="multipart")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("name", ["code", "challenge", "password"])
def test_a_secret_in_the_query_string_is_refused_before_it_is_used(api, user, name):
    # R71: codes and challenges go in the body only; the URL ends up in logs.
    challenge = start(api)
    code = last_code()
    response = api.post(f"{VERIFY}?{name}=123456", {"challenge": challenge, "code": code})
    assert response.status_code == 400
    assert name in response.json()["fields"]
    row = Challenge.objects.get()
    assert row.attempts == 0 and row.status == "pending"


@pytest.mark.parametrize(
    "code", [" 123 456 ", "12345", "1234567", "12345a", "１２３４５６", "١٢٣٤٥٦", "", "9" * 10_000]
)
def test_odd_codes_are_ordinary_wrong_codes(api, user, code, fixed_codes):
    # R35, R23: refused with the standard answer and counted as a failure.
    fixed_codes("654321")
    challenge = start(api)
    response = api.post(VERIFY, {"challenge": challenge, "code": code})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_code"
    assert Challenge.objects.get().attempts == 1


def test_spaces_and_dashes_in_the_right_code_are_fine(api, user, fixed_codes):
    fixed_codes("123456")
    response = api.post(VERIFY, {"challenge": start(api), "code": " 123-456 "})
    assert response.status_code == 200


def test_get_on_a_post_endpoint_is_405_in_the_error_shape(api, user):
    response = api.get(VERIFY)
    assert response.status_code == 405
    assert response.json() == {"code": "method_not_allowed", "detail": 'Method "GET" not allowed.'}


def test_device_id_must_be_a_json_integer(api, user):
    log_in(api)
    for device in ("1", 1.0, True, 2**63):
        response = api.post("/api/step-up/", {"device": device})
        assert response.status_code == 400
        assert "device" in response.json()["fields"]


def test_an_unknown_channel_and_a_disabled_channel_are_refused(api, make_user, settings):
    make_user(phone=None)
    api.credentials(
        HTTP_AUTHORIZATION="Token "
        + api.post(LOGIN, {"username": "alice", "password": PASSWORD}).json()["token"]
    )
    assert api.post(DEVICES, {"channel": "fax", "destination": "x"}).json()["code"] == "invalid"
    settings.OTP_AUTH = {**settings.OTP_AUTH, "CHANNELS": ["email"]}
    response = api.post(DEVICES, {"channel": "sms", "destination": "+233207654321"})
    assert response.status_code == 400 and response.json()["code"] == "device_error"


def test_answers_are_never_cached(api, user):
    response = api.post(LOGIN, {"username": "alice", "password": PASSWORD})
    assert "no-store" in response["Cache-Control"]
    assert json.loads(response.content)["challenge"]
