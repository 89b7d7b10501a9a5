"""The password step is slowed down per account and limited per client address, the same
way on the HTML and API paths, with one answer whatever the account and the password."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core.cache import caches
from django.test import Client

from otp_auth.models import AuditEvent
from otp_auth.services import guard
from tests.conftest import PASSWORD, otp_settings, password_step

pytestmark = pytest.mark.django_db

LOGIN = "/account/login/"
API_LOGIN = "/api/login/"


def form_errors(response: Any) -> list[str]:
    return [str(e) for e in response.context["form"].non_field_errors()]


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_html_200_wrong_passwords_then_the_right_one_is_refused_like_a_wrong_one(
    client, user, clock
):
    for _ in range(200):
        password_step(client, password="wrong")
    right = password_step(client)
    wrong = password_step(client, password="wrong")
    assert not signed_in(client)
    assert right.status_code == wrong.status_code == 200
    assert form_errors(right) == form_errors(wrong)
    assert "try again" in form_errors(right)[0].lower()
    # A wait, not a lock: once it is over, the owner's password works.
    clock.shift(guard.password_delay(200) + 1)
    assert password_step(client).status_code == 302


def test_html_an_unknown_account_gets_the_same_answers(client, user, clock):
    for name in ("alice", "nobody"):
        for _ in range(20):
            password_step(client, username=name, password="wrong")
    known = password_step(client, username="alice")
    unknown = password_step(client, username="nobody")
    assert known.status_code == unknown.status_code == 200
    assert form_errors(known) == form_errors(unknown)
    assert "try again" in form_errors(known)[0].lower()


def test_api_200_wrong_passwords_then_the_right_one_is_refused_like_a_wrong_one(user, clock):
    from rest_framework.test import APIClient

    api = APIClient()
    for _ in range(200):
        api.post(API_LOGIN, {"username": "alice", "password": "wrong"})
    right = api.post(API_LOGIN, {"username": "alice", "password": PASSWORD})
    wrong = api.post(API_LOGIN, {"username": "alice", "password": "wrong"})
    unknown_before = api.post(API_LOGIN, {"username": "nobody", "password": "wrong"})
    assert right.status_code == wrong.status_code == 429
    assert right.json() == wrong.json()
    assert right["Retry-After"] == wrong["Retry-After"]
    assert right.json()["code"] == "rate_limited"
    assert unknown_before.status_code == 401  # another account is not slowed down
    clock.shift(guard.password_delay(200) + 1)
    assert api.post(API_LOGIN, {"username": "alice", "password": PASSWORD}).status_code == 202


def test_the_account_count_ignores_case_and_spaces(client, user, clock):
    for variant in ("alice", "ALICE", " Alice ", "alice", "aLiCe", "alice"):
        password_step(client, username=variant, password="wrong")
    assert form_errors(password_step(client)) == form_errors(
        password_step(client, username="ALICE", password="wrong")
    )
    assert not signed_in(client)


def test_the_wait_is_per_account_and_follows_the_account_across_addresses(make_user, clock):
    make_user(username="bob")
    make_user(username="alice")
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(10):
        password_step(attacker, password="wrong")
    # Another account from the attacker's address is not affected...
    assert password_step(attacker, username="bob").status_code == 302
    # ...and the slowed account is slowed from everywhere (the count is the account's).
    owner = Client(REMOTE_ADDR="203.0.113.9")
    assert password_step(owner).status_code == 200
    assert not signed_in(owner)


def test_the_address_limit_spans_accounts_and_spares_other_addresses(make_user):
    make_user(username="alice")
    stuffing = Client(REMOTE_ADDR="198.51.100.8")
    with otp_settings(RATE_LIMITS={"password_failures_per_ip": "3/h"}):
        for name in ("a1", "a2", "a3"):
            password_step(stuffing, username=name, password="wrong")
        refused = password_step(stuffing)
        assert refused.status_code == 200
        assert "try again" in form_errors(refused)[0].lower()
        assert password_step(Client(REMOTE_ADDR="203.0.113.10")).status_code == 302


def test_a_right_password_gives_back_its_address_count_and_clears_the_account(client, user):
    with otp_settings(RATE_LIMITS={"password_failures_per_ip": "3/h"}):
        for _ in range(2):
            password_step(client, password="wrong")
        for _ in range(3):
            # Counted, successes would make 3, 4, 5 against a limit of 3.
            client.post("/account/login/cancel/")
            assert password_step(client).status_code == 302


def test_refusals_fire_user_login_failed_and_are_audited_once_per_wait(client, user, clock):
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
        seen.append(credentials)

    user_login_failed.connect(receiver)
    try:
        for _ in range(30):
            password_step(client, password="wrong")
        password_step(client)
    finally:
        user_login_failed.disconnect(receiver)
    assert len(seen) == 31
    assert all(PASSWORD not in str(c) and "wrong" not in str(c) for c in seen)
    rows = AuditEvent.objects.filter(kind=AuditEvent.Kind.RATE_LIMITED, reason="password_delay")
    assert rows.count() == 1


def test_parallel_guesses_past_the_free_ones_get_one_look_per_wait(user, clock, monkeypatch):
    # Counted before the check: a burst cannot all slip in before the count rises.
    looked: list[str] = []
    real = guard.authenticate

    def counting(request: Any, **credentials: Any) -> Any:
        looked.append(credentials["username"])
        return real(request, **credentials)

    monkeypatch.setattr(guard, "authenticate", counting)
    for _ in range(guard.app_settings.PASSWORD_DELAY_AFTER):
        guard.check_password(None, "alice", "wrong")
    # The next attempt starts while another one holds the gate (is being looked at).
    digest = guard._account_digest("alice")
    caches["default"].add(f"otp_auth:pw:gate:{digest}:0.0", 1, 60)
    with pytest.raises(guard.RateLimitedError):
        guard.check_password(None, "alice", PASSWORD)
    assert len(looked) == guard.app_settings.PASSWORD_DELAY_AFTER


def test_a_counter_deleted_between_add_and_incr_starts_again(monkeypatch):
    """A success in another request deletes the failure counter; a guess that was between
    ``add`` and ``incr`` then counts from 1 instead of failing with a server error."""
    from django.core.cache import caches

    from otp_auth.conf import app_settings
    from otp_auth.services import guard

    cache = caches[app_settings.CACHE]
    real_incr = cache.incr
    calls = []

    def racing_incr(key: str, *args: Any, **kwargs: Any) -> int:
        calls.append(key)
        if len(calls) == 1:
            cache.delete(key)  # the other request's success, just now
        return int(real_incr(key, *args, **kwargs))

    monkeypatch.setattr(cache, "incr", racing_incr)

    assert guard._count(cache, "otp_auth:test:counter") == 1
    assert len(calls) == 2
