"""Password reset by code over the API: the same steps, codes, counters and limits as the
pages (R73-R80, R82 through the API)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rest_framework")

from django.core import mail  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from otp_auth.models import Device, Lockout, PasswordReset  # noqa: E402
from otp_auth.providers import locmem  # noqa: E402
from tests.api.conftest import ME, last_email_code, log_in, wrong  # noqa: E402
from tests.conftest import PASSWORD, last_code, otp_settings  # noqa: E402

pytestmark = pytest.mark.django_db

RESET = "/api/password-reset/"
VERIFY = "/api/password-reset/verify/"
SEND = "/api/password-reset/send/"
COMPLETE = "/api/password-reset/complete/"
NEW_PASSWORD = "a fresh and long passphrase 42"


@pytest.fixture
def alice(make_user: Any) -> Any:
    """A phone (used last) and an email device."""
    user = make_user("alice", email="alice@mail.example")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def email_factor(user: Any) -> str:
    return f"device:{Device.objects.get(user=user, phone_number='').pk}"


def ask(api: Any, identifier: str = "alice", **extra: Any) -> Any:
    return api.post(RESET, {"identifier": identifier, **extra})


def grant_for(api: Any, identifier: str = "alice") -> dict[str, Any]:
    reset = ask(api, identifier).json()["reset"]
    response = api.post(VERIFY, {"reset": reset, "code": last_code()})
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_reset_over_the_api_end_to_end(api, alice):
    token = log_in(api)
    api.credentials()

    asked = ask(api)
    assert asked.status_code == 202
    assert set(asked.json()) == {"reset", "detail"}
    verified = api.post(VERIFY, {"reset": asked.json()["reset"], "code": last_code()})
    body = verified.json()
    assert verified.status_code == 200
    assert body["second_factor_required"] is True and body["second_factor_available"] is True
    assert [f["key"] for f in body["factors"]] == [email_factor(alice)]
    assert body["factors"][0]["label"] == "Mail (a••••@mail.example)"

    sent = api.post(SEND, {"grant": body["grant"], "factor": email_factor(alice)})
    assert sent.status_code == 202
    assert sent.json()["destination"] == "a••••@mail.example"
    done = api.post(
        COMPLETE,
        {
            "grant": body["grant"],
            "new_password": NEW_PASSWORD,
            "second_factor": {"factor": email_factor(alice), "code": last_email_code()},
        },
    )

    assert done.status_code == 200
    assert set(done.json()) == {"detail"}  # no credential
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert not Token.objects.filter(user=alice).exists()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(ME).status_code == 401
    assert mail.outbox[-1].subject == "Your password was reset"


def test_the_request_answers_alike_for_any_account(api, alice):
    known = ask(api, "alice")
    unknown = ask(api, "nobody")
    phone = ask(api, "+233241234567")

    answers = [
        (r.status_code, sorted(r.json()), r.json()["detail"]) for r in (known, unknown, phone)
    ]
    assert answers[0] == answers[1] == answers[2]
    assert len({r.json()["reset"] for r in (known, unknown, phone)}) == 3
    assert len(locmem.outbox) == 2


def test_requests_through_the_pages_and_the_api_share_one_limit(api, alice):
    """One budget of requests per account, whichever way they come in."""
    pages = Client()
    pages.post("/account/password-reset/", {"identifier": "alice"})
    pages.post("/account/password-reset/", {"identifier": "alice@example.com"})
    ask(api, "+233241234567")

    over = ask(api)

    assert over.status_code == 202
    assert len(locmem.outbox) == 3


def test_wrong_codes_answer_alike_and_lock_alike(api, alice):
    known = ask(api).json()["reset"]
    unknown = ask(api, "nobody").json()["reset"]
    code = last_code()

    for _ in range(4):
        a = api.post(VERIFY, {"reset": known, "code": wrong(code)})
        b = api.post(VERIFY, {"reset": unknown, "code": wrong(code)})
        assert (
            (a.status_code, a.json())
            == (b.status_code, b.json())
            == (
                401,
                {"code": "invalid_code", "detail": a.json()["detail"]},
            )
        )
        assert a["WWW-Authenticate"] == b["WWW-Authenticate"]
    a = api.post(VERIFY, {"reset": known, "code": wrong(code)})
    b = api.post(VERIFY, {"reset": unknown, "code": wrong(code)})

    assert a.json()["code"] == b.json()["code"] == "challenge_locked"
    assert api.post(VERIFY, {"reset": known, "code": code}).json()["code"] == "challenge_locked"


def test_the_reset_id_stops_working_once_its_code_is_accepted(api, alice):
    reset = ask(api).json()["reset"]
    code = last_code()
    assert api.post(VERIFY, {"reset": reset, "code": code}).status_code == 200

    again = api.post(VERIFY, {"reset": reset, "code": code})

    assert (again.status_code, again.json()["code"]) == (401, "invalid_code")


def test_the_code_alone_is_not_enough(api, alice):
    grant = grant_for(api)["grant"]

    refused = api.post(COMPLETE, {"grant": grant, "new_password": NEW_PASSWORD})

    assert (refused.status_code, refused.json()["code"]) == (403, "second_factor_required")
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_an_account_with_one_device_is_told_it_cannot_reset_here(api, make_user):
    make_user("ivan")
    body = grant_for(api, "ivan")
    assert body["second_factor_available"] is False and body["factors"] == []

    refused = api.post(COMPLETE, {"grant": body["grant"], "new_password": NEW_PASSWORD})

    assert (refused.status_code, refused.json()["code"]) == (403, "second_factor_unavailable")


def test_a_refused_password_keeps_the_second_code(api, alice, settings):
    settings.AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}
    ]
    grant = grant_for(api)["grant"]
    api.post(SEND, {"grant": grant, "factor": email_factor(alice)})
    proof = {"factor": email_factor(alice), "code": last_email_code()}

    short = api.post(COMPLETE, {"grant": grant, "new_password": "short", "second_factor": proof})

    assert short.status_code == 400
    assert short.json()["code"] == "invalid"
    assert "too short" in short.json()["fields"]["new_password"][0]
    good = api.post(
        COMPLETE, {"grant": grant, "new_password": NEW_PASSWORD, "second_factor": proof}
    )
    assert good.status_code == 200


def test_a_wrong_second_code_is_refused(api, alice):
    grant = grant_for(api)["grant"]
    api.post(SEND, {"grant": grant, "factor": email_factor(alice)})

    refused = api.post(
        COMPLETE,
        {
            "grant": grant,
            "new_password": NEW_PASSWORD,
            "second_factor": {"factor": email_factor(alice), "code": wrong(last_email_code())},
        },
    )

    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_code")


def test_the_grant_works_once(api, alice):
    with otp_settings(PASSWORD_RESET_SECOND_FACTOR=False):
        grant = grant_for(api)["grant"]
        assert api.post(COMPLETE, {"grant": grant, "new_password": NEW_PASSWORD}).status_code == 200

        again = api.post(COMPLETE, {"grant": grant, "new_password": "another passphrase 99"})

    assert (again.status_code, again.json()["code"]) == (401, "reset_expired")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_sending_to_the_device_that_got_the_code_is_refused(api, alice):
    grant = grant_for(api)["grant"]
    phone = Device.objects.get(user=alice, email="")

    refused = api.post(SEND, {"grant": grant, "factor": f"device:{phone.pk}"})

    assert (refused.status_code, refused.json()["code"]) == (400, "device_error")


def test_a_second_send_inside_the_cooldown_is_refused(api, alice):
    grant = grant_for(api)["grant"]
    api.post(SEND, {"grant": grant, "factor": email_factor(alice)})

    again = api.post(SEND, {"grant": grant, "factor": email_factor(alice)})

    assert (again.status_code, again.json()["code"]) == (429, "resend_too_soon")
    assert int(again["Retry-After"]) > 0


def test_secrets_in_the_url_are_refused(api, alice):
    reset = ask(api).json()["reset"]

    response = api.post(f"{VERIFY}?code=123456", {"reset": reset, "code": last_code()})

    assert response.status_code == 400
    assert PasswordReset.objects.get().status == PasswordReset.Status.PENDING


def test_codes_must_be_strings(api, alice):
    reset = ask(api).json()["reset"]

    response = api.post(VERIFY, {"reset": reset, "code": 123456})

    assert response.status_code == 400 and "code" in response.json()["fields"]


def test_a_session_client_needs_a_csrf_token(alice):
    from rest_framework.test import APIClient

    strict = APIClient(enforce_csrf_checks=True)
    strict.cookies["sessionid"] = "anything"

    response = strict.post(RESET, {"identifier": "alice"}, format="json")

    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert locmem.outbox == []


def test_wrong_codes_never_lock_the_account(api, alice):
    with otp_settings(LOCKOUT_THRESHOLD=2, DISABLE_THRESHOLD=3):
        reset = ask(api).json()["reset"]
        code = last_code()
        for _ in range(5):
            api.post(VERIFY, {"reset": reset, "code": wrong(code)})

    assert not Lockout.objects.filter(user=alice, failures__gt=0).exists()


def test_the_endpoints_are_absent_when_turned_off(api, alice):
    with otp_settings(PASSWORD_RESET=False):
        response = ask(api)

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert locmem.outbox == []
