"""The account-security epoch and the seams between features it closes.

Each test is an attack that worked before one mechanism decided it: a login, flow token,
API token, remembered browser or step-up that outlived a change to the account, a flow
that re-opened old challenges, a send limit that locked the owner out.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import Client

from otp_auth.conf import app_settings
from otp_auth.constants import Purpose
from otp_auth.models import AuditEvent, Challenge, Device, Lockout, SecurityEpoch
from otp_auth.providers import locmem
from otp_auth.services import epoch, policy
from otp_auth.services.login import mark_verified
from tests.concurrency import outcome_names, race, require_postgresql
from tests.conftest import PASSWORD, last_code, login_fully, otp_settings, password_step
from tests.factor_helpers import add_authenticator, code_now

pytest.importorskip("rest_framework")

from rest_framework.test import APIClient  # noqa: E402

pytestmark = pytest.mark.django_db

VERIFY = "/account/login/verify/"


def is_logged_in(client: Client) -> bool:
    return client.get("/private/").status_code == 200


@pytest.fixture
def alice(make_user: Any) -> Any:
    """A phone (the default factor) and an email address."""
    from django.utils import timezone

    user = make_user("alice", email="alice@mail.example")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def email_device(user: Any) -> Device:
    return Device.objects.get(user=user, phone_number="")


def sends() -> int:
    return len(locmem.outbox) + len(mail.outbox)


def api_start(api: APIClient, username: str = "alice") -> dict[str, Any]:
    answer = api.post("/api/login/", {"username": username, "password": PASSWORD})
    assert answer.status_code == 202, answer.content
    return dict(answer.json())


def api_token(api: APIClient) -> str:
    flow = api_start(api)
    answer = api.post("/api/login/verify/", {"challenge": flow["challenge"], "code": last_code()})
    assert answer.status_code == 200, answer.content
    token = str(answer.json()["token"])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return token


def reset_password(user: Any) -> None:
    """What the reset flow does to the account once its codes passed."""
    from otp_auth.models import PasswordReset
    from otp_auth.services.password_reset import _revoke_everything

    user.set_password("a brand new password 9931")
    user.save()
    keep = PasswordReset.objects.create(user=user, subject="x", expires_at=user.date_joined)
    _revoke_everything(user, keep=keep)


# Scenario 2: a login started before a reset (or any change) cannot finish after it.


def test_an_html_login_started_before_a_reset_cannot_send_or_finish(alice, clock, mailoutbox):
    attacker = Client()
    assert password_step(attacker).status_code == 302
    reset_password(alice)
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    before = sends()

    attacker.post("/account/login/resend/")
    attacker.post("/account/login/switch/", {"factor": f"device:{email_device(alice).pk}"})
    attacker.post(VERIFY, {"code": last_code()})

    assert sends() == before
    assert not is_logged_in(attacker)


@pytest.mark.parametrize("step", ["resend", "switch"])
def test_an_api_flow_started_before_a_reset_cannot_send_or_finish(alice, clock, mailoutbox, step):
    api = APIClient()
    flow = api_start(api)
    reset_password(alice)
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    before = sends()

    if step == "resend":
        answer = api.post("/api/login/resend/", {"challenge": flow["challenge"]})
    else:
        factor = f"device:{email_device(alice).pk}"
        answer = api.post("/api/login/switch/", {"challenge": flow["challenge"], "factor": factor})
    finish = api.post("/api/login/verify/", {"challenge": flow["challenge"], "code": last_code()})

    assert answer.status_code == 401 and answer.json()["code"] == "flow_expired"
    assert sends() == before
    assert finish.status_code == 401 and "token" not in finish.json()


@pytest.mark.parametrize(
    "change",
    ["password", "factor_added", "factor_removed", "signed_out_everywhere"],
)
def test_any_change_to_the_account_ends_pending_logins(alice, change):
    html, api = Client(), APIClient()
    assert password_step(html).status_code == 302
    flow = api_start(api)
    code = last_code()
    if change == "password":
        alice.set_password("another password 4471")
        alice.save()
    elif change == "factor_added":
        add_authenticator(alice)
    elif change == "factor_removed":
        email_device(alice).delete()
    else:
        epoch.advance(alice, reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)

    assert html.post(VERIFY, {"code": code}).status_code == 302
    assert not is_logged_in(html)
    answer = api.post("/api/login/verify/", {"challenge": flow["challenge"], "code": code})
    assert answer.status_code == 401


# Scenario 3: a flow has one live challenge; replaying an older flow token re-opens nothing.


def test_replaying_the_first_flow_token_to_switch_is_held_to_the_flows_rules(alice, clock):
    api = APIClient()
    first = api_start(api)
    other = f"device:{email_device(alice).pk}"
    phone = first["factor"]
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    switched = api.post("/api/login/switch/", {"challenge": first["challenge"], "factor": other})
    assert switched.status_code == 200

    answers = []
    for factor in [phone, other] * 4:  # the attack: the first token, again and again
        reply = api.post("/api/login/switch/", {"challenge": first["challenge"], "factor": factor})
        answers.append(reply.status_code)

    pending = Challenge.objects.filter(user=alice, purpose=Purpose.LOGIN, status="pending")
    assert pending.count() == 1
    assert set(answers) == {429}  # the cooldown of the flow's latest send
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    more = [
        api.post("/api/login/switch/", {"challenge": first["challenge"], "factor": f}).status_code
        for f in [phone, other] * 4
        if not clock.shift(app_settings.RESEND_COOLDOWN + 1)
    ]
    sent = Challenge.objects.filter(user=alice, purpose=Purpose.LOGIN)
    assert max(c.send_count for c in sent) <= app_settings.MAX_RESENDS + 1
    assert more.count(200) <= app_settings.MAX_RESENDS - 1
    assert pending.count() <= 1


def test_the_html_switch_is_held_to_the_flows_latest_challenge(alice, clock, mailoutbox):
    client = Client()
    password_step(client)
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    client.post("/account/login/switch/", {"factor": f"device:{email_device(alice).pk}"})
    before = sends()

    client.post("/account/login/switch/", {"factor": f"device:{_phone(alice).pk}"})

    assert sends() == before  # inside the cooldown of the switch just made
    assert Challenge.objects.filter(user=alice, status="pending").count() == 1


def _phone(user: Any) -> Device:
    return Device.objects.get(user=user, email="")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_switches_of_one_flow_send_once(make_user, clock):
    require_postgresql()
    alice = make_user("alice", email="alice@mail.example")
    api = APIClient()
    flow = api_start(api)
    clock.shift(app_settings.RESEND_COOLDOWN + 1)
    target = f"device:{email_device(alice).pk}"
    mail.outbox.clear()

    def switch(_index: int) -> int:
        reply = APIClient().post(
            "/api/login/switch/", {"challenge": flow["challenge"], "factor": target}
        )
        return int(reply.status_code)

    results = race(6, switch)

    assert outcome_names(results) == {"ok": 6}
    assert sorted(results).count(200) == 1
    assert len(mail.outbox) == 1
    assert Challenge.objects.filter(user=alice, status="pending").count() == 1


# Scenario 4: API tokens end with everything else.


@pytest.mark.parametrize("change", ["password_change", "factor_removed", "sign_out_everywhere"])
def test_an_api_token_ends_with_a_change_made_elsewhere(alice, change, clock):
    api = APIClient()
    api_token(api)
    assert api.get("/api/me/").status_code == 200
    browser = Client()
    login_fully(browser)
    if change == "password_change":
        browser.post(
            "/account/password/",
            {"old_password": PASSWORD, "new_password1": "Zq9!x7wrt", "new_password2": "Zq9!x7wrt"},
        )
    elif change == "factor_removed":
        browser.post(f"/account/devices/{email_device(alice).pk}/remove/")
    else:
        browser.post("/account/sessions/end-others/")

    assert is_logged_in(browser)  # the session that made the change stays
    assert api.get("/api/me/").status_code == 401


def test_a_change_made_with_the_token_keeps_that_token(alice, clock):
    api = APIClient()
    api_token(api)
    sent = api.post("/api/step-up/", {}).json()
    proof = {"challenge": sent["challenge"], "code": last_code()}

    removed = api.post(f"/api/devices/{email_device(alice).pk}/remove/", {"step_up": proof}, "json")

    assert removed.status_code == 204
    assert api.get("/api/me/").status_code == 200


# Scenario 6: a remembered browser never skips a lock or a disabled factor.


@pytest.mark.parametrize("state", ["locked", "disabled", "waiting"])
def test_a_remembered_browser_does_not_skip_a_lock(alice, clock, state):
    from django.utils import timezone

    with otp_settings(TRUSTED_BROWSERS=True):
        client = Client()
        password_step(client)
        client.post(VERIFY, {"code": last_code(), "remember": "1"})
        client.post("/account/logout/")
        now = timezone.now()
        fields = {
            "locked": {"failures": 10, "locked_until": now + timezone.timedelta(minutes=15)},
            "disabled": {"failures": 100, "disabled_at": now},
            "waiting": {"failures": 6, "last_failure_at": now},
        }[state]
        Lockout.objects.update_or_create(user=alice, defaults=fields)

        answer = password_step(client)

        assert answer.status_code != 302 or answer["Location"] != "/home/"
        assert not is_logged_in(client)


def test_a_remembered_browser_ends_with_the_epoch(alice):
    with otp_settings(TRUSTED_BROWSERS=True):
        client = Client()
        password_step(client)
        client.post(VERIFY, {"code": last_code(), "remember": "1"})
        client.post("/account/logout/")
        epoch.advance(alice, reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)

        assert password_step(client)["Location"] == VERIFY


# Step-up freshness and reset grants carry the epoch too.


def test_a_step_up_made_before_a_change_elsewhere_is_not_fresh(alice):
    from otp_auth.services.step_up import has_recent_step_up

    client = Client()
    login_fully(client)
    request = client.get("/private/").wsgi_request
    assert has_recent_step_up(request, alice)

    epoch.advance(alice, reason=epoch.Reason.FACTOR_ADDED)

    assert not has_recent_step_up(request, alice)


def test_the_session_that_makes_a_change_keeps_its_step_up(alice):
    client = Client()
    login_fully(client)

    client.post(f"/account/devices/{email_device(alice).pk}/remove/")

    request = client.get("/private/").wsgi_request
    from otp_auth.services.step_up import has_recent_step_up

    assert has_recent_step_up(request, alice)


def test_a_reset_grant_ends_with_a_change_to_the_account(alice):
    from otp_auth.services import password_reset
    from otp_auth.services.password_reset import ResetGrantError

    asked = password_reset.request_reset("alice")
    asked.deliver()
    _flow, grant = password_reset.verify_reset(asked.reset.public_id, last_code())
    epoch.advance(alice, reason=epoch.Reason.FACTOR_REMOVED)

    with pytest.raises(ResetGrantError):
        password_reset.complete_reset(grant, "a brand new password 9931")


# The epoch itself.


def test_every_kind_of_change_advances_the_epoch(alice, staff_user):
    start = epoch.current(alice)
    alice.set_password("changed 123 abc")
    alice.save()
    add_authenticator(alice)
    email_device(alice).delete()
    from otp_auth.services import recovery

    recovery.generate_codes(alice)
    alice.is_active = False
    alice.save()

    row = SecurityEpoch.objects.get(user=alice)
    assert row.value == epoch.current(alice) == start + 5
    assert row.reason == epoch.Reason.DEACTIVATED


@pytest.fixture
def staff_user(make_user: Any) -> Any:
    return make_user("root", phone="+233209999999", is_staff=True, is_superuser=True)


def test_a_verified_request_costs_no_epoch_query(alice, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client()
    login_fully(client)
    client.get("/private/")
    epoch.advance(alice, reason=epoch.Reason.FACTOR_ADDED)  # this session is not kept
    other = Client()
    login_fully(other)
    other.get("/private/")

    with CaptureQueriesContext(connection) as queries:
        other.get("/private/")

    assert not [q for q in queries.captured_queries if "securityepoch" in q["sql"]]


def test_another_process_sees_an_advance_within_the_memo_window(alice, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(epoch.time, "monotonic", lambda: now[0])
    client = Client()
    login_fully(client)
    assert is_logged_in(client)

    # Another process advances: the database row and the cache, not this process's memo.
    SecurityEpoch.objects.update_or_create(user=alice, defaults={"value": 99})
    from django.core.cache import caches

    cache = caches[app_settings.CACHE]
    cache.set(epoch.USER_KEY.format(alice.pk), 99)
    cache.set(epoch.VERSION_KEY, "from-another-process")

    now[0] += epoch.MEMO_SECONDS / 2
    assert is_logged_in(client)
    now[0] += epoch.MEMO_SECONDS
    assert not is_logged_in(client)


def test_an_advance_in_this_process_applies_at_once(alice):
    client = Client()
    login_fully(client)

    epoch.advance(alice, reason=epoch.Reason.SIGNED_OUT_EVERYWHERE)

    assert not is_logged_in(client)


def test_sign_out_everywhere_else_is_audited(alice):
    client = Client()
    login_fully(client)

    client.post("/account/sessions/end-others/")

    assert AuditEvent.objects.filter(
        kind=AuditEvent.Kind.SIGNED_OUT_EVERYWHERE, user=alice
    ).exists()


# Scenario 11: the session key changes when a password-only session gains its first factor.


def test_the_session_key_changes_when_the_first_factor_is_confirmed(make_user):
    make_user("bob", phone=None)
    client = Client()
    password_step(client, "bob")
    assert is_logged_in(client)
    before = client.cookies["sessionid"].value

    client.post("/account/devices/add/", {"channel": "sms", "destination": "+233201230000"})
    client.post("/account/devices/confirm/", {"code": last_code()})

    assert client.cookies["sessionid"].value != before
    assert is_logged_in(client)


def test_the_session_key_changes_when_a_first_app_is_confirmed(make_user, clock):
    user = make_user("bob", phone=None)
    client = Client()
    password_step(client, "bob")
    before = client.cookies["sessionid"].value
    client.get("/account/authenticator/add/")
    from otp_auth.encryption import decrypt_seed
    from otp_auth.models import TOTPDevice

    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    client.post(
        "/account/authenticator/add/", {"code": code_now(decrypt_seed(pending.encrypted_seed))}
    )

    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert client.cookies["sessionid"].value != before
    assert is_logged_in(client)


# Scenario 12: someone who knows the password cannot lock the owner out by spending the
# phone's send budget: the other factors are offered, and the page says what is limited.


def _spend_phone_budget(clock: Any) -> None:
    attacker = APIClient()
    for _ in range(5):  # send_per_destination: 5/h
        api_start(attacker)
        clock.shift(1)


def test_the_owner_is_offered_the_app_when_the_phone_cannot_get_more_codes(alice, clock):
    _app, seed = add_authenticator(alice)
    Device.objects.filter(user=alice, email="").update(last_used_at=_later())
    _spend_phone_budget(clock)

    owner = Client()
    answer = password_step(owner)

    assert answer.status_code == 302 and answer["Location"] == VERIFY
    page = owner.get(VERIFY).content.decode()
    assert "No more codes can be sent to" in page
    assert "authenticator app" in page
    assert owner.post(VERIFY, {"code": code_now(seed)}).status_code == 302
    assert is_logged_in(owner)


def test_the_api_offers_the_other_factors_too(alice, clock):
    _spend_phone_budget(clock)

    flow = api_start(APIClient())

    assert flow["notice"].startswith("No more codes can be sent to")
    assert flow["channel"] is None
    assert any(f["key"] == f"device:{email_device(alice).pk}" for f in flow["factors"])


def test_without_another_factor_the_password_step_names_the_send_cap(make_user, clock):
    make_user("solo")
    attacker = APIClient()
    for _ in range(5):
        api_start(attacker, "solo")
        clock.shift(1)

    answer = password_step(Client(), "solo")

    assert answer.status_code == 200
    page = answer.content.decode()
    assert "No more codes can be sent to Phone" in page
    assert "too many were sent to it recently" in page
    assert "Too many attempts" not in page


def _later() -> Any:
    from django.utils import timezone

    return timezone.now() + timezone.timedelta(seconds=5)


def test_the_policy_counts_every_kind_of_factor(make_user):
    from otp_auth.services import recovery

    user = make_user("carol", phone=None)
    assert not policy.has_any_factor(user)
    add_authenticator(user)
    assert policy.has_any_factor(user)
    recovery.generate_codes(user)
    from otp_auth.models import TOTPDevice

    TOTPDevice.objects.filter(user=user).delete()
    # The last factor gone: recovery codes alone guard nothing, so they go too.
    assert not policy.has_any_factor(user)


def test_mark_verified_stamps_the_current_epoch(alice, rf):
    from django.contrib.sessions.backends.cache import SessionStore

    request = rf.get("/")
    request.session = SessionStore()
    request.session[SESSION_KEY] = str(alice.pk)
    epoch.advance(alice, reason=epoch.Reason.FACTOR_ADDED)

    mark_verified(request, alice, None, factor="totp")

    assert not epoch.session_stale(request, alice)


# EMAIL_CODES_FOR keeps email out of sign-in: no factor list offers such a device, and an
# account whose only factor it is gets no password-only way in.


def test_an_email_device_is_not_offered_at_login_when_email_is_for_resets_only(alice):
    from otp_auth.services.factors import user_factors

    with otp_settings(EMAIL_CODES_FOR=["password_reset"]):
        keys = [f.key for f in user_factors(alice)]

    assert f"device:{email_device(alice).pk}" not in keys
    assert f"device:{_phone(alice).pk}" in keys


def test_an_email_only_account_is_not_let_in_on_its_password(make_user):
    make_user("erin", phone=None, email="erin@example.org")

    with otp_settings(EMAIL_CODES_FOR=["password_reset"]):
        client = Client()
        password_step(client, "erin")
        api = APIClient().post("/api/login/", {"username": "erin", "password": PASSWORD})

    assert not is_logged_in(client)
    assert api.status_code != 200 and "token" not in api.json()


# R65: optional absolute and idle lifetimes for verified sessions, at no extra query.


def test_a_verified_session_ends_after_its_maximum_age(alice, clock):
    with otp_settings(VERIFIED_SESSION_MAX_AGE=3600):
        client = Client()
        login_fully(client)
        clock.shift(3599)
        assert is_logged_in(client)
        clock.shift(2)
        assert not is_logged_in(client)


def test_a_verified_session_ends_when_idle(alice, clock):
    with otp_settings(VERIFIED_SESSION_IDLE_TIMEOUT=600):
        client = Client()
        login_fully(client)
        for _ in range(5):  # active: each request well inside the idle window
            clock.shift(500)
            assert is_logged_in(client)
        clock.shift(601)
        assert not is_logged_in(client)


def test_session_lifetimes_cost_no_query(alice, clock):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client()
    login_fully(client)
    client.get("/private/")
    with CaptureQueriesContext(connection) as plain:
        client.get("/private/")
    with otp_settings(VERIFIED_SESSION_MAX_AGE=3600, VERIFIED_SESSION_IDLE_TIMEOUT=600):
        client.get("/private/")
        with CaptureQueriesContext(connection) as timed:
            client.get("/private/")

    assert len(timed) == len(plain)
