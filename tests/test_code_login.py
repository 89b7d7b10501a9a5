"""Sign-in by a one-time code: the same answer and work for unknown accounts, send and
request caps, the lockout budget, and what an accepted code is worth."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from otp_auth.providers import locmem
from otp_auth.services import code_login
from tests.api.conftest import last_email_code
from tests.conftest import last_code, otp_settings, wrong_code

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _on() -> Any:
    with otp_settings(CODE_LOGIN=True):
        yield


def _ask(client: Any, identifier: str) -> Any:
    # The code leaves when the test client closes the response.
    return client.post("/account/login/code/", {"identifier": identifier})


def test_unknown_and_known_accounts_get_the_same_answer_and_queries(client, user):
    with CaptureQueriesContext(connection) as known:
        code_login.request_code("alice")
    with CaptureQueriesContext(connection) as unknown:
        code_login.request_code("nobody")
    assert len(known) == len(unknown)
    a, b = _ask(client, "alice"), _ask(client, "nobody")
    assert (a.status_code, a["Location"]) == (b.status_code, b["Location"])


def test_a_flow_without_an_account_locks_like_a_real_one(client, user):
    _ask(client, "nobody")
    for _ in range(4):
        page = client.post("/account/login/code/verify/", {"code": "123456"})
        assert page.status_code == 200
    locked = client.post("/account/login/code/verify/", {"code": "123456"})
    assert locked.status_code == 302 and locked["Location"] == "/account/login/code/"


def test_requests_per_account_are_capped_so_no_one_pumps_sms(client, user):
    with otp_settings(CODE_LOGIN=True, RATE_LIMITS={"code_login_per_account": "2/h"}):
        for _ in range(4):
            _ask(client, "alice")
    assert len(locmem.outbox) == 2


def test_the_code_counts_as_one_factor_and_a_second_is_asked(client, make_user):
    make_user("carol", email="carol@mail.example")
    _ask(client, "carol@mail.example")  # the typed address gets the code
    response = client.post("/account/login/code/verify/", {"code": last_email_code()})
    assert response["Location"] == "/account/login/verify/"  # the second step
    assert client.get("/private/").status_code != 200
    page = client.get("/account/login/verify/")
    assert page.context["challenge"].channel == "sms"  # the other device, not the inbox


def test_the_code_alone_signs_in_an_account_without_a_password(client, make_user):
    carol = make_user("carol", phone=None, email="carol@mail.example")
    carol.set_unusable_password()
    carol.save()
    with otp_settings(CODE_LOGIN=True, CODE_LOGIN_SINGLE_FACTOR=True):
        _ask(client, "carol")
        client.post("/account/login/code/verify/", {"code": last_email_code()})
        assert client.get("/private/").status_code == 200


def test_wrong_codes_spend_the_lockout_budget(client, user):
    with otp_settings(CODE_LOGIN=True, LOCKOUT_THRESHOLD=2, VERIFY_DELAY_AFTER=10):
        _ask(client, "alice")
        code = last_code()
        client.post("/account/login/code/verify/", {"code": wrong_code(code)})
        client.post("/account/login/code/verify/", {"code": wrong_code(code)})
        from otp_auth.models import Lockout

        assert Lockout.objects.get(user=user).is_locked()
