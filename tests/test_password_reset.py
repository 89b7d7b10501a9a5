"""Password reset by one-time code, through the HTML pages (R73-R80, R82; R81 is in
test_password_reset_concurrency.py, the API in tests/api/test_password_reset_api.py)."""

from __future__ import annotations

import re
import statistics
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.views import PasswordResetView as DjangoPasswordResetView
from django.core import mail
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import include, path, reverse

from otp_auth.checks import check_password_reset
from otp_auth.conf import app_settings
from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.models import AuditEvent, Challenge, Device, Lockout, PasswordReset, TrustedBrowser
from otp_auth.password_reset_views import RESET_SESSION_KEY, django_password_reset_urls
from otp_auth.providers import locmem
from otp_auth.services import password_reset as reset_service
from otp_auth.services import recovery
from tests.conftest import PASSWORD, last_code, login_fully, otp_settings, password_step, wrong_code
from tests.factor_helpers import add_authenticator, code_now

pytestmark = pytest.mark.django_db

REQUEST = "/account/password-reset/"
CODE = "/account/password-reset/code/"
NEW = "/account/password-reset/new/"
SEND = "/account/password-reset/send/"
LOGIN = "/account/login/"
NEW_PASSWORD = "a fresh and long passphrase 42"
NO_LIMITS = dict.fromkeys(
    [
        "reset_per_account",
        "reset_per_ip",
        "reset_failures_per_account",
        "send_per_user",
        "send_per_destination",
        "send_per_ip",
    ]
)

# A URLconf with Django's own reset URL names pointing at the flow, as a project adds them.
urlpatterns = [
    path("account/", include("otp_auth.urls")),
    path("admin/", admin_site.urls),
    *django_password_reset_urls(),
]
# And one that routes Django's reset by link.
DJANGO_LINKS = types.ModuleType(f"{__name__}_links")
DJANGO_LINKS.urlpatterns = [  # type: ignore[attr-defined]
    path("account/", include("otp_auth.urls")),
    path("reset-by-link/", DjangoPasswordResetView.as_view(), name="django_reset"),
]
sys.modules[DJANGO_LINKS.__name__] = DJANGO_LINKS


@pytest.fixture
def alice(make_user: Any) -> Any:
    """Phone (used last) and email device: two factors, as most reset users have."""
    from django.utils import timezone

    user = make_user("alice", email="alice@mail.example")
    Device.objects.filter(user=user, email="").update(last_used_at=timezone.now())
    return user


def ask(client: Client, identifier: str = "alice", channel: str = "") -> Any:
    return client.post(REQUEST, {"identifier": identifier, "channel": channel})


def enter(client: Client, code: str) -> Any:
    return client.post(CODE, {"code": code})


def email_code() -> str:
    match = re.search(r"\b([0-9]{6})\b", mail.outbox[-1].body)
    assert match, "no code in the last email"
    return match.group(1)


def finish(client: Client, factor: str = "", code: str = "", password: str = NEW_PASSWORD) -> Any:
    data = {"new_password1": password, "new_password2": password}
    if factor:
        data |= {"factor": factor, "code": code}
    return client.post(NEW, data)


def email_device(user: Any) -> Device:
    return Device.objects.get(user=user, phone_number="")


def phone_device(user: Any) -> Device:
    return Device.objects.get(user=user, email="")


def granted(client: Client, identifier: str = "alice") -> None:
    """Ask and enter the SMS code: the session holds the grant."""
    assert ask(client, identifier).status_code == 302
    assert enter(client, last_code())["Location"] == NEW


# The whole flow -------------------------------------------------------------------------


def test_reset_by_code_end_to_end(client, alice):
    page = client.get(REQUEST)
    assert page.status_code == 200
    assert b"Username, email address or phone number" in page.content

    asked = ask(client)
    assert asked.status_code == 302 and asked["Location"] == CODE
    assert "reset code" in locmem.outbox[-1].text
    assert locmem.outbox[-1].purpose == Purpose.PASSWORD_RESET
    assert b"Enter your reset code" in client.get(CODE).content

    verified = enter(client, last_code())
    assert verified["Location"] == NEW
    form = client.get(NEW)
    assert b"Send a code to" in form.content and b"A recovery code" not in form.content

    sent = client.post(SEND, {"factor": f"device:{email_device(alice).pk}"})
    assert sent["Location"] == NEW
    done = finish(client, f"device:{email_device(alice).pk}", email_code())

    assert done.status_code == 302 and done["Location"] == LOGIN
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert "_auth_user_id" not in client.session
    assert b"Your password was changed" in client.get(LOGIN).content
    row = PasswordReset.objects.get()
    assert row.status == PasswordReset.Status.COMPLETED and row.grant_hash == ""


def test_after_a_reset_the_next_login_needs_the_new_password_and_a_code(client, alice):
    """R75: not logged in by the reset; the second factor is still asked at sign-in."""
    granted(client)
    client.post(SEND, {"factor": f"device:{email_device(alice).pk}"})
    finish(client, f"device:{email_device(alice).pk}", email_code())

    assert client.get("/private/")["Location"].startswith(LOGIN)
    assert password_step(client, password=PASSWORD).status_code == 200  # old one refused
    step = password_step(client, password=NEW_PASSWORD)
    assert step["Location"] == "/account/login/verify/"
    assert client.get("/private/").status_code == 302  # a partial login is no login
    # The device that backed the reset was used last: the login code went there.
    client.post("/account/login/verify/", {"code": email_code()})
    assert client.get("/private/").content == b"private alice"


# R73: the same answer, the same work, the same time -----------------------------------


def _page_without_token(response: Any) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", response.content)


@pytest.mark.parametrize("unknown", ["nobody", "nobody@example.com", "+233209999999"])
def test_unknown_accounts_get_the_same_answer(alice, unknown):
    known_client, unknown_client = Client(), Client()
    identifier = {"nobody": "alice", "nobody@example.com": "alice@mail.example"}.get(
        unknown, "+233241234567"
    )

    known = ask(known_client, identifier)
    other = ask(unknown_client, unknown)

    assert (known.status_code, known["Location"]) == (other.status_code, other["Location"])
    assert _page_without_token(known_client.get(CODE)) == _page_without_token(
        unknown_client.get(CODE)
    )
    assert len(locmem.outbox) + len(mail.outbox) == 1
    wrong_known = enter(known_client, "000000")
    wrong_unknown = enter(unknown_client, "000000")
    assert _page_without_token(wrong_known) == _page_without_token(wrong_unknown)


def _queries(identifier: str) -> list[str]:
    """The statements a request runs until its answer (the send comes after)."""
    with CaptureQueriesContext(connection) as captured:
        _elapsed, response = _wsgi_post(REQUEST, {"identifier": identifier})
    response.close()
    # Ids, timestamps and savepoint names differ; the statements must not.
    values = r"'[^']*'|\b\d+\b|\bNULL\b|\"s\w+_x\d+\""
    return [re.sub(values, "?", q["sql"]) for q in captured.captured_queries]


@pytest.mark.parametrize(
    "known, unknown",
    [
        ("alice", "nobody"),
        ("alice@example.com", "nobody@example.com"),
        ("0241234567", "0209999999"),
    ],
)
def test_a_request_runs_the_same_queries_whether_or_not_the_account_exists(
    wsgi, alice, known, unknown
):
    _queries(known)  # warms the session and content-type caches for both
    PasswordReset.objects.all().delete()

    assert _queries(known) == _queries(unknown)


class SlowProvider(locmem.LocmemProvider):
    """A provider that takes as long as a real one over the network."""

    delay = 0.15

    def deliver(self, message: Any) -> Any:
        time.sleep(self.delay)
        return super().deliver(message)


@pytest.fixture
def wsgi() -> Iterator[None]:
    """Serve requests through Django's own WSGI handler, as a server does, without it
    closing the test's database connection at each request (as the test client does)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _wsgi_post(path_info: str, data: dict[str, str]) -> tuple[float, Any]:
    """Time a POST as a WSGI server serves it: until the response is handed back, before
    the server closes it."""
    token = "a" * 32  # an unmasked CSRF secret, in the cookie and the form
    request = RequestFactory().post(
        path_info, {**data, "csrfmiddlewaretoken": token}, HTTP_COOKIE=f"csrftoken={token}"
    )
    started = time.perf_counter()
    response = WSGIHandler()(request.environ, lambda status, headers: None)
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    return elapsed, response


def test_the_time_to_answer_does_not_depend_on_the_account(wsgi, alice):
    """R73, with a provider that takes 150 ms: the answer comes before the send, so an
    existing account answers as fast as an unknown one, and the code still goes out when
    the server closes the response."""
    slow = {"default": {"BACKEND": f"{__name__}.SlowProvider"}}
    with otp_settings(PROVIDERS=slow, RATE_LIMITS=NO_LIMITS):
        known, unknown = [], []
        for _ in range(6):
            for identifier, times in (("alice", known), ("nobody", unknown)):
                elapsed, response = _wsgi_post(REQUEST, {"identifier": identifier})
                times.append(elapsed)
                response.close()

    assert len(locmem.outbox) == 6  # every code for alice went out, after its answer
    assert statistics.median(known) < SlowProvider.delay
    assert abs(statistics.median(known) - statistics.median(unknown)) < 0.05


def test_the_code_is_sent_only_when_the_response_is_closed(wsgi, alice):
    elapsed, response = _wsgi_post(REQUEST, {"identifier": "alice"})
    assert locmem.outbox == []
    assert PasswordReset.objects.get().challenge is None

    response.close()

    assert len(locmem.outbox) == 1
    assert PasswordReset.objects.get().challenge.purpose == Purpose.PASSWORD_RESET


def test_a_failed_send_looks_like_a_sent_code(client, alice):
    locmem.fail_next()

    response = ask(client)

    assert response["Location"] == CODE
    assert Challenge.objects.get().status == ChallengeStatus.SEND_FAILED
    assert enter(client, "123456").status_code == 200


# Who gets a code, and where -----------------------------------------------------------


def test_the_code_goes_to_the_channel_asked_for(client, alice):
    ask(client, channel="email")
    assert locmem.outbox == [] and len(mail.outbox) == 1
    assert "password reset code" in mail.outbox[0].subject

    ask(client, channel="voice")
    assert locmem.outbox[-1].channel == "voice"


def test_a_channel_no_device_serves_gets_nothing(client, make_user):
    make_user("bob")  # a phone only

    assert ask(client, "bob", channel="email")["Location"] == CODE

    assert locmem.outbox == [] and mail.outbox == []
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.RESET_REQUESTED)
    assert event.reason == "no_device"


def test_an_address_typed_gets_the_code(client, alice):
    ask(client, "ALICE@mail.example")
    assert locmem.outbox == [] and len(mail.outbox) == 1

    ask(client, "024 123 4567")
    assert locmem.outbox[-1].destination == "+233241234567"


def test_the_account_email_address_finds_the_account(client, alice):
    ask(client, "alice@example.com")  # the user's own address, not a device

    assert locmem.outbox[-1].destination == "+233241234567"


def test_an_address_shared_by_two_accounts_gets_nothing(client, make_user):
    make_user("carol", email="family@mail.example")
    make_user("dave", phone="+233241111111", email="family@mail.example")

    ask(client, "family@mail.example")

    assert locmem.outbox == [] and mail.outbox == []
    assert AuditEvent.objects.get(kind=AuditEvent.Kind.RESET_REQUESTED).reason == "ambiguous"


def test_inactive_accounts_and_accounts_without_a_password_get_nothing(client, make_user):
    make_user("eve", is_active=False)
    frank = make_user("frank", phone="+233241111111")
    frank.set_unusable_password()
    frank.save()

    ask(client, "eve")
    ask(client, "frank")

    assert locmem.outbox == []


def test_a_new_request_cancels_the_earlier_code(client, alice, unique_codes):
    ask(client)
    first = last_code()
    ask(client)

    assert enter(client, first).status_code == 200
    assert enter(client, last_code())["Location"] == NEW
    assert Challenge.objects.filter(status=ChallengeStatus.CANCELLED).count() == 1


def test_the_pages_answer_404_when_turned_off(client, alice):
    with otp_settings(PASSWORD_RESET=False):
        assert client.get(REQUEST).status_code == 404
        assert ask(client).status_code == 404
        assert client.get(CODE).status_code == 404
        assert client.get(NEW).status_code == 404


def test_an_unverified_session_can_reset(client, alice):
    """The pages are exempt from the second factor: a password-only session (from another
    login view) reaches them, and is logged out at the end."""
    assert (
        client.post("/plain-login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    )
    assert client.get("/private/")["Location"].startswith("/account/login/verify/")

    granted(client)
    client.post(SEND, {"factor": f"device:{email_device(alice).pk}"})
    assert finish(client, f"device:{email_device(alice).pk}", email_code())["Location"] == LOGIN

    assert "_auth_user_id" not in client.session


# R74: a second factor besides the reset code -------------------------------------------


def test_the_reset_code_alone_does_not_set_the_password(client, alice):
    granted(client)

    refused = finish(client)

    assert refused.status_code == 200
    assert b"This field is required" in refused.content
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_the_device_that_got_the_code_cannot_be_the_second_factor(client, alice):
    granted(client)

    response = finish(client, f"device:{phone_device(alice).pk}", last_code())

    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_a_wrong_second_code_is_refused(client, alice):
    granted(client)
    client.post(SEND, {"factor": f"device:{email_device(alice).pk}"})

    response = finish(client, f"device:{email_device(alice).pk}", wrong_code(email_code()))

    assert b"That code is not valid" in response.content
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_an_authenticator_app_is_a_second_factor(client, make_user):
    user = make_user("gina")  # a phone and an authenticator app
    app, seed = add_authenticator(user)
    granted(client, "gina")

    response = finish(client, f"totp:{app.pk}", code_now(seed))

    assert response["Location"] == LOGIN
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_recovery_code_is_a_second_factor(client, make_user):
    user = make_user("hank")
    codes = recovery.generate_codes(user)
    granted(client, "hank")

    response = finish(client, "recovery", codes[0])

    assert response["Location"] == LOGIN
    assert recovery.remaining_codes(user) == len(codes) - 1


def test_an_account_with_a_single_device_cannot_reset_here(client, make_user):
    user = make_user("ivan")  # a phone only: the code and the second factor would be one
    granted(client, "ivan")

    page = client.get(NEW)
    response = finish(client)

    assert b"contact support" in page.content and b"new_password1" not in page.content
    assert b"contact support" in response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_without_the_second_factor_setting_the_code_is_enough(client, make_user):
    make_user("judy")
    with otp_settings(PASSWORD_RESET_SECOND_FACTOR=False):
        granted(client, "judy")
        assert finish(client)["Location"] == LOGIN

    # The second factor still applies at the next login.
    assert password_step(client, "judy", NEW_PASSWORD)["Location"] == "/account/login/verify/"
    assert "_auth_user_id" not in client.session


# R75, R79: what a completed reset ends --------------------------------------------------


def _complete(client: Client, user: Any) -> Any:
    granted(client, user.get_username())
    client.post(SEND, {"factor": f"device:{email_device(user).pk}"})
    return finish(client, f"device:{email_device(user).pk}", email_code())


def test_a_reset_ends_every_session_and_pending_code(alice, clock, mailoutbox):
    signed_in, pending, resetting = Client(), Client(), Client()
    login_fully(signed_in)
    password_step(pending)
    open_login = Challenge.objects.filter(purpose=Purpose.LOGIN, status="pending").get()
    TrustedBrowser.objects.create(
        user=alice, token_hash="x" * 64, fingerprint="y", expires_at=open_login.expires_at
    )

    _complete(resetting, alice)

    assert signed_in.get("/private/")["Location"].startswith(LOGIN)
    open_login.refresh_from_db()
    assert open_login.status == ChallengeStatus.CANCELLED
    assert not Challenge.objects.filter(user=alice, status="pending").exists()
    assert not TrustedBrowser.objects.filter(user=alice).exists()
    # The login started before the reset cannot go on: no new code for it, by a resend or
    # by switching device, and nothing it sends in can sign in.
    clock.shift(app_settings.RESEND_COOLDOWN + 1)  # no cooldown stands in the way
    sent = len(locmem.outbox), len(mailoutbox)
    pending.post("/account/login/resend/")
    pending.post("/account/login/switch/", {"factor": f"device:{email_device(alice).pk}"})
    assert (len(locmem.outbox), len(mailoutbox)) == sent
    pending.post("/account/login/verify/", {"code": last_code()})
    assert pending.get("/private/")["Location"].startswith(LOGIN)


def test_a_reset_notifies_the_user(client, alice):
    _complete(client, alice)

    notice = mail.outbox[-1]
    assert notice.subject == "Your password was reset"
    assert set(notice.to) == {"alice@example.com", "alice@mail.example"}
    assert "reset with a one-time code" in notice.body
    assert not re.search(r"\b[0-9]{6}\b", notice.body)


def test_an_account_without_an_email_address_is_told_by_sms(client, make_user):
    user = make_user("kim")  # a phone, and no email address at all
    user.email = ""
    user.save()
    with otp_settings(PASSWORD_RESET_SECOND_FACTOR=False):
        granted(client, "kim")
        assert finish(client)["Location"] == LOGIN

    assert mail.outbox == []
    assert (
        locmem.outbox[-1].text
        == "Your password was reset. If this was not you, contact support now."
    )
    assert locmem.outbox[-1].metadata == {"notification": "password_reset"}


def test_the_reset_is_audited_without_any_secret(client, alice):
    _complete(client, alice)

    kinds = list(
        AuditEvent.objects.filter(purpose=Purpose.PASSWORD_RESET).values_list("kind", "reason")
    )
    assert (AuditEvent.Kind.RESET_REQUESTED, "code") in kinds
    assert (AuditEvent.Kind.RESET_COMPLETED, f"device:{email_device(alice).pk}") in kinds
    values = " ".join(str(v) for row in AuditEvent.objects.values_list() for v in row)
    assert NEW_PASSWORD not in values
    assert not any(
        code in values for code in re.findall(r"\b\d{6}\b", " ".join(m.text for m in locmem.outbox))
    )


# R76: lifetimes --------------------------------------------------------------------------


def test_reset_codes_live_the_reset_lifetimes(client, alice):
    with otp_settings(PASSWORD_RESET_PHONE_TTL=300, PASSWORD_RESET_EMAIL_TTL=7200):
        ask(client)
        ask(client, channel="email")

    sms, email = Challenge.objects.order_by("pk")
    assert (sms.expires_at - sms.created_at).total_seconds() == 300
    assert (email.expires_at - email.created_at).total_seconds() == 7200
    assert "It expires in 5 minutes" in locmem.outbox[-1].text
    assert "It expires in 120 minutes" in mail.outbox[-1].body


def test_an_expired_code_is_refused(client, alice, clock):
    ask(client)
    code = last_code()
    clock.shift(601)

    assert b"That code is not valid" in enter(client, code).content


def test_the_grant_expires(client, alice, clock):
    granted(client)
    clock.shift(601)

    response = client.get(NEW)

    assert response["Location"] == REQUEST
    assert b"expired or was already used" in client.get(REQUEST).content


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, []),
        ({"PASSWORD_RESET_PHONE_TTL": 601}, ["otp_auth.E040"]),
        ({"PASSWORD_RESET_EMAIL_TTL": 86_401}, ["otp_auth.E040"]),
        ({"PASSWORD_RESET_PHONE_TTL": 601, "PASSWORD_RESET": False}, []),
        ({"PASSWORD_RESET_GRANT_TTL": 5}, ["otp_auth.E007"]),
    ],
)
def test_e040_reset_lifetimes_beyond_nist(changes, expected):
    with otp_settings(**changes):
        assert [m.id for m in check_password_reset()] == expected


@pytest.mark.urls(DJANGO_LINKS.__name__)
def test_w040_django_reset_links_that_outlive_a_day(settings):
    found = check_password_reset()
    settings.PASSWORD_RESET_TIMEOUT = 86_400
    quiet = check_password_reset()

    assert [m.id for m in found] == ["otp_auth.W040"]
    assert "/reset-by-link/" in found[0].msg
    assert quiet == []


# R77: single use, bound, throttled ------------------------------------------------------


def test_a_reset_code_works_once(alice):
    first, second = Client(), Client()
    ask(first)
    second.cookies = first.cookies.__class__(first.cookies)  # the same session, twice
    code = last_code()

    assert enter(first, code)["Location"] == NEW
    assert b"Enter your reset code" not in client_get(second, CODE)


def client_get(client: Client, url: str) -> bytes:
    response = client.get(url)
    return response.content if response.status_code == 200 else response["Location"].encode()


def test_a_login_code_does_not_reset_and_a_reset_code_does_not_log_in(alice):
    logging_in, resetting = Client(), Client()
    password_step(logging_in)
    login_code = last_code()
    ask(resetting)
    reset_code = last_code()
    if login_code == reset_code:
        pytest.skip("the two codes happen to be equal")

    assert enter(resetting, login_code).status_code == 200
    assert logging_in.post("/account/login/verify/", {"code": reset_code}).status_code == 200


def test_a_reset_code_is_bound_to_its_account(make_user, alice):
    make_user("bob", phone="+233241111111")
    for_bob, for_alice = Client(), Client()
    ask(for_bob, "bob")
    bob_code = last_code()
    ask(for_alice)
    if bob_code == last_code():
        pytest.skip("the two codes happen to be equal")

    assert enter(for_alice, bob_code).status_code == 200


def test_only_a_hash_of_the_code_is_stored(client, alice):
    ask(client)
    code = last_code()

    challenge = Challenge.objects.get()
    assert challenge.code_hash and code not in challenge.code_hash
    row = PasswordReset.objects.values().get()
    assert code not in " ".join(str(v) for v in row.values())


def test_five_wrong_codes_lock_the_reset(client, alice):
    ask(client)
    code = last_code()
    for _ in range(4):
        assert b"That code is not valid" in enter(client, wrong_code(code)).content

    locked = enter(client, wrong_code(code))

    assert b"Too many wrong codes" in locked.content
    assert RESET_SESSION_KEY not in client.session
    assert Challenge.objects.get().status == ChallengeStatus.LOCKED


def test_a_flow_without_an_account_locks_like_a_real_one(alice):
    known, unknown = Client(), Client()
    ask(known)
    ask(unknown, "nobody")
    code = last_code()

    for _ in range(5):
        a = _page_without_token(enter(known, wrong_code(code)))
        b = _page_without_token(enter(unknown, wrong_code(code)))
        assert a == b
    assert b"Too many wrong codes" in a


def test_an_expired_code_keeps_counting_like_a_flow_without_an_account(alice, clock):
    known, unknown = Client(), Client()
    ask(known)
    ask(unknown, "nobody")
    code = last_code()
    enter(known, wrong_code(code))
    enter(unknown, wrong_code(code))
    clock.shift(700)  # the SMS code expired; the flows did not

    pages = [
        (
            _page_without_token(enter(known, wrong_code(code))),
            _page_without_token(enter(unknown, "1")),
        )
        for _ in range(4)
    ]

    assert all(a == b for a, b in pages)
    assert b"Too many wrong codes" in pages[-1][0]


def test_refused_reset_codes_per_account_are_limited(alice):
    with otp_settings(RATE_LIMITS={"reset_failures_per_account": "3/h"}):
        client = Client()
        ask(client)
        code = last_code()
        for _ in range(3):
            enter(client, wrong_code(code))

        refused = enter(client, code)

    assert b"Too many attempts" in refused.content
    assert refused.status_code == 200
    assert Challenge.objects.get().status == ChallengeStatus.PENDING  # not even looked at


def test_refused_codes_per_address_are_shared_with_the_login(make_user, alice):
    make_user("bob", phone="+233241111111")
    with otp_settings(RATE_LIMITS={"verify_failures_per_ip": "3/h"}):
        login = Client()
        password_step(login, "bob")
        login.post("/account/login/verify/", {"code": wrong_code(last_code())})
        login.post("/account/login/verify/", {"code": wrong_code(last_code())})
        resetting = Client()
        ask(resetting)
        enter(resetting, wrong_code(last_code()))

        refused = enter(resetting, last_code())

    assert b"Too many attempts" in refused.content


# R78: request limits ---------------------------------------------------------------------


def test_requests_per_account_are_limited_without_a_word(client, alice):
    for _ in range(3):
        ask(client)
    sent = len(locmem.outbox)

    over = ask(client)

    assert over["Location"] == CODE
    assert len(locmem.outbox) == sent == 3
    refusals = AuditEvent.objects.filter(kind=AuditEvent.Kind.RATE_LIMITED)
    assert list(refusals.values_list("reason", flat=True)) == ["reset_per_account"]


def test_requests_per_address_are_limited_across_accounts(make_user):
    for index in range(3):
        make_user(f"user{index}", phone=f"+23324111111{index}")
    with otp_settings(RATE_LIMITS={"reset_per_ip": "2/h"}):
        client = Client()
        for index in range(3):
            assert ask(client, f"user{index}")["Location"] == CODE

    assert [m.destination for m in locmem.outbox] == ["+233241111110", "+233241111111"]


def test_a_request_for_an_unknown_account_counts_like_a_known_one(client):
    for _ in range(3):
        ask(client, "nobody")
    ask(client, "nobody")

    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.RATE_LIMITED).count() == 1


# R80: no secret in URLs, no referrer ------------------------------------------------------


def test_no_secret_in_urls_and_no_referrer(client, alice):
    responses = [client.get(REQUEST), ask(client), client.get(CODE)]
    code = last_code()
    responses.append(enter(client, code))
    responses.append(client.get(NEW))
    responses.append(client.post(SEND, {"factor": f"device:{email_device(alice).pk}"}))
    grant = client.session[RESET_SESSION_KEY]["grant"]
    row = PasswordReset.objects.get()

    for response in responses:
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
        location = response.get("Location", "")
        assert code not in location and grant not in location and row.public_id not in location
    assert b'<meta name="referrer" content="same-origin">' in responses[0].content
    assert "http" not in locmem.outbox[0].text and "http" not in mail.outbox[-1].body


def test_the_session_key_changes_when_the_code_is_accepted(client, alice):
    ask(client)
    before = client.session.session_key

    enter(client, last_code())

    assert client.session.session_key != before
    assert set(client.session[RESET_SESSION_KEY]) == {"grant"}


# R82: a reset never locks anything ---------------------------------------------------------


def test_wrong_reset_codes_never_lock_the_account(client, alice):
    with otp_settings(RATE_LIMITS=NO_LIMITS, LOCKOUT_THRESHOLD=3, DISABLE_THRESHOLD=5):
        for _ in range(3):
            ask(client)
            code = last_code()
            for _ in range(5):
                enter(client, wrong_code(code))

        assert not Lockout.objects.filter(user=alice, failures__gt=0).exists()
        assert Device.objects.filter(user=alice, confirmed=True).count() == 2
        login_fully(Client())


def test_many_requests_never_lock_the_account(client, alice):
    for _ in range(12):
        ask(client)

    assert not Lockout.objects.filter(user=alice).exclude(failures=0).exists()
    assert not AuditEvent.objects.filter(
        kind__in=[AuditEvent.Kind.ACCOUNT_LOCKED, AuditEvent.Kind.FACTOR_DISABLED]
    ).exists()
    login_fully(Client())


def test_a_lock_from_failed_logins_looks_like_a_wrong_code(client, alice, clock):
    """A reset code does not lift a lock, and the lock does not show: a flow without an
    account answers the same."""
    ask(client)
    code = last_code()
    from django.utils import timezone

    Lockout.objects.filter(user=alice).update(
        failures=10, locked_until=timezone.now() + timezone.timedelta(hours=1)
    )

    refused = enter(client, code)

    assert b"That code is not valid" in refused.content
    assert Lockout.objects.get(user=alice).failures == 10


# Passwords, Django's names ------------------------------------------------------------------


@override_settings(
    AUTH_PASSWORD_VALIDATORS=[
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    ]
)
def test_the_new_password_passes_djangos_validators(client, alice):
    granted(client)
    client.post(SEND, {"factor": f"device:{email_device(alice).pk}"})
    code = email_code()

    weak = finish(client, f"device:{email_device(alice).pk}", code, password="password")

    assert b"This password is too common" in weak.content
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    # The second code was not spent on a refused password.
    assert finish(client, f"device:{email_device(alice).pk}", code)["Location"] == LOGIN


@pytest.mark.urls(__name__)
def test_djangos_url_names_lead_to_the_flow(client, alice):
    assert reverse("password_reset") == "/password-reset/"
    assert client.get(reverse("password_reset"))["Location"] == REQUEST
    assert client.get(reverse("admin_password_reset"))["Location"] == REQUEST
    with otp_settings(ADMIN_LOGIN_REDIRECT=False):
        admin_login = client.get("/admin/login/")
    assert b"Forgotten your login credentials" in admin_login.content
    assert reverse("admin_password_reset").encode() in admin_login.content


def test_the_service_refuses_a_grant_it_did_not_issue(alice):
    for grant in ["", "x" * 500, None, 42, "not-a-grant"]:
        with pytest.raises(reset_service.ResetGrantError):
            reset_service.granted_reset(grant)


def test_a_broken_send_is_logged_and_the_answer_stands(client, alice, monkeypatch, caplog):
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(reset_service, "issue_challenge", broken)

    response = ask(client)

    assert response["Location"] == CODE
    assert "sending a password reset code failed" in caplog.text


def test_the_pages_need_the_flow_in_the_session(client, alice):
    assert client.get(CODE)["Location"] == REQUEST
    assert client.post(CODE, {"code": "123456"})["Location"] == REQUEST
    assert client.get(NEW)["Location"] == REQUEST
    assert client.post(SEND, {"factor": "recovery"})["Location"] == REQUEST


def test_a_second_send_inside_the_cooldown_waits(client, alice):
    granted(client)
    factor = f"device:{email_device(alice).pk}"
    client.post(SEND, {"factor": factor})

    client.post(SEND, {"factor": factor})

    assert b"Please wait" in client.get(NEW).content
    assert len(mail.outbox) == 1


def test_old_resets_are_cleaned_up(alice, clock):
    from io import StringIO

    from django.core.management import call_command

    reset_service.request_reset("nobody")
    clock.shift(31 * 86_400)
    reset_service.request_reset("alice")
    out = StringIO()

    call_command("otp_auth_cleanup", stdout=out)

    assert "Deleted 1 password reset(s) older than 30 days." in out.getvalue()
    assert list(PasswordReset.objects.values_list("user", flat=True)) == [alice.pk]


def test_the_demo_login_page_links_to_the_reset(client, settings):
    """The demo adds "Forgot password?" to the package's sign-in page, through Django's
    own URL name."""
    from pathlib import Path

    demo_templates = Path(__file__).resolve().parents[1] / "demo_project" / "templates"
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [demo_templates]}]
    settings.ROOT_URLCONF = __name__

    page = client.get("/account/login/")

    assert b'<a href="/password-reset/">Forgot password?</a>' in page.content
    assert b"Sign in" in page.content
    assert client.get("/password-reset/")["Location"] == REQUEST
