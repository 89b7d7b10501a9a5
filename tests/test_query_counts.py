"""Exact query counts of the login flow and of a verified request, and proof that they do
not grow with the tables: the hot lookups go through indexes.

A count that changes here is a change in the cost of every login: update the numbers only
on purpose, and the README's performance figures with them (``python -m benchmarks``).

The count tests run without the per-test transaction (``transaction=True``): inside one,
``bulk_create()`` and ``atomic()`` emit fewer statements than they do in production, and
the counts would flatter the package. They measure a returning user's login (the user's
lockout row exists), the common case and the one ``python -m benchmarks`` times.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from otp_auth.crypto import generate_public_id
from otp_auth.models import Challenge, Device
from tests.conftest import PASSWORD, last_code, login_fully, password_step, pending_of
from tests.factor_helpers import add_authenticator, code_now

DB_SESSIONS = "django.contrib.sessions.backends.db"
CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
OTP_MIDDLEWARE = "otp_auth.middleware.OTPMiddleware"

# Queries per step, for the flow as a browser runs it (the redirect to the code page is
# followed). No session row exists before the second factor: the pending login is a
# signed cookie, so the password step is Django's user lookup, one factor lookup
# (devices, with the apps, recovery codes and lockout state as subqueries) and one
# transaction (BEGIN, challenge, audit row, COMMIT); the code page makes no query; the
# code step is one transaction (BEGIN, challenge with its user FOR UPDATE, lockout row
# FOR UPDATE, consume, stamp the device, audit row, COMMIT), Django's last_login, and,
# with database sessions, the new session row (key check, BEGIN, INSERT, COMMIT).
FLOW = {
    DB_SESSIONS: {
        "GET login": 0,
        "POST password": 6,
        "GET code page": 0,
        "POST code": 12,
        "GET protected": 2,
    },
    CACHE_SESSIONS: {
        "GET login": 0,
        "POST password": 6,
        "GET code page": 0,
        "POST code": 8,
        "GET protected": 1,
    },
}
# An authenticator app: nothing to send (no challenge, no audit row at the password
# step); the code step locks the app and the lockout row, records the step, audits.
TOTP_FLOW = {
    "GET login": 0,
    "POST password": 5,
    "GET code page": 0,
    "POST code": 11,
    "GET protected": 2,
}
FLOW_BUDGET = {DB_SESSIONS: 20, CACHE_SESSIONS: 15}

counted = pytest.mark.django_db(transaction=True)


@pytest.fixture
def returning(user: Any) -> Any:
    """``user`` after one complete login elsewhere: what a returning user looks like."""
    login_fully(Client())
    return user


def flow_steps(client: Client, code: Any = None) -> list[tuple[str, Any]]:
    code = code or last_code
    return [
        ("GET login", lambda: client.get("/account/login/")),
        ("POST password", lambda: password_step(client)),
        ("GET code page", lambda: client.get("/account/login/verify/")),
        ("POST code", lambda: client.post("/account/login/verify/", {"code": code()})),
        ("GET protected", lambda: client.get("/private/")),
    ]


EXPECTED_STATUS = {
    "GET login": 200,
    "POST password": 302,
    "GET code page": 200,
    "POST code": 302,
    "GET protected": 200,
}


def add_others(count: int) -> None:
    """``count`` other users, each with a confirmed device and a pending login challenge."""
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"other{i:05d}", password="!") for i in range(count)]
    )
    devices = Device.objects.bulk_create(
        [
            Device(user=u, phone_number=f"+23324{i:07d}", channels=["sms"], confirmed=True)
            for i, u in enumerate(users)
        ]
    )
    now = timezone.now()
    Challenge.objects.bulk_create(
        [
            Challenge(
                public_id=generate_public_id(),
                user=d.user,
                device=d,
                purpose="login",
                channel="sms",
                provider_alias="default",
                destination_masked="••••0000",
                max_attempts=5,
                send_count=1,
                expires_at=now + timedelta(minutes=5),
            )
            for d in devices
        ]
    )


@counted
@pytest.mark.parametrize("engine", [DB_SESSIONS, CACHE_SESSIONS], ids=["db", "cache"])
def test_each_step_of_the_login_flow_makes_an_exact_number_of_queries(
    engine, returning, django_assert_num_queries
):
    with override_settings(SESSION_ENGINE=engine):
        client = Client()
        for name, step in flow_steps(client):
            with django_assert_num_queries(FLOW[engine][name]):
                response = step()
            assert response.status_code == EXPECTED_STATUS[name], name
        assert response.content == b"private alice"


@counted
def test_each_step_of_an_authenticator_app_login_makes_an_exact_number_of_queries(
    returning, django_assert_num_queries
):
    returning.otp_devices.all().delete()
    app, seed = add_authenticator(returning)
    client = Client()
    for name, step in flow_steps(client, lambda: code_now(seed)):
        with django_assert_num_queries(TOTP_FLOW[name]):
            response = step()
        assert response.status_code == EXPECTED_STATUS[name], name
    assert response.content == b"private alice"


@counted
@pytest.mark.parametrize("engine", [DB_SESSIONS, CACHE_SESSIONS], ids=["db", "cache"])
def test_the_whole_flow_stays_within_the_query_budget(engine, returning):
    """20 statements per flow with database sessions (plain Django's password login
    makes 11), 15 with cache sessions (plain: 3), BEGIN and COMMIT included."""
    with override_settings(SESSION_ENGINE=engine):
        client = Client()
        with CaptureQueriesContext(connection) as ctx:
            for _name, step in flow_steps(client):
                step()
        total = len(ctx)  # read now: the next request clears the query log
        assert client.get("/private/").content == b"private alice"
    assert total <= FLOW_BUDGET[engine]


@counted
def test_a_verified_request_costs_no_query_beyond_plain_django(returning):
    client = Client()
    login_fully(client)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/private/")
    with_otp = len(ctx)  # read now: the next request clears the query log
    assert response.content == b"private alice"
    assert response.wsgi_request.user.is_verified()  # OTPMiddleware did run

    plain = [name for name in settings.MIDDLEWARE if name != OTP_MIDDLEWARE]
    with override_settings(MIDDLEWARE=plain):
        other = Client()
        other.cookies = client.cookies  # the same verified session
        with CaptureQueriesContext(connection) as ctx:
            response = other.get("/private/")
        without_otp = len(ctx)
    assert response.content == b"private alice"
    assert not hasattr(response.wsgi_request.user, "is_verified")

    assert with_otp == without_otp == 2


@counted
@pytest.mark.parametrize("others", [0, 2000])
def test_password_and_code_steps_cost_the_same_with_full_tables(
    others, returning, django_assert_num_queries
):
    add_others(others)
    assert Challenge.objects.exclude(user=returning).count() == others
    client = Client()
    with django_assert_num_queries(FLOW[DB_SESSIONS]["POST password"]):
        assert password_step(client).status_code == 302
    with django_assert_num_queries(FLOW[DB_SESSIONS]["GET code page"]):
        assert client.get("/account/login/verify/").status_code == 200
    with django_assert_num_queries(FLOW[DB_SESSIONS]["POST code"]):
        response = client.post("/account/login/verify/", {"code": last_code()})
    assert response.status_code == 302
    assert client.get("/private/").content == b"private alice"


def _captured(ctx: CaptureQueriesContext, table: str, column: str) -> str:
    """The one SELECT from ``table`` filtering on ``column``."""
    sqls = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"] and column in q["sql"]
    ]
    assert len(sqls) == 1, sqls
    return sqls[0]


def _plan(sql: str) -> list[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return [str(row[-1]) for row in cursor.fetchall()]
        # PostgreSQL: forbid sequential scans; it still picks one if no index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return [str(row[0]) for row in cursor.fetchall()]


def _uses_index(plan: list[str], table: str) -> bool:
    if connection.vendor == "sqlite":
        lines = [line for line in plan if f" {table} " in f"{line} "]
        return bool(lines) and all(
            line.startswith("SEARCH") and ("INDEX" in line or "PRIMARY KEY" in line)
            for line in lines
        )
    text = "\n".join(plan)
    index_scan = re.search(rf"(Index Scan|Index Only Scan|Bitmap Heap Scan) .*on {table}\b", text)
    return index_scan is not None and f"Seq Scan on {table}" not in text


@pytest.mark.django_db
def test_hot_lookups_use_an_index_not_a_table_scan(user, client):
    add_others(2000)
    with CaptureQueriesContext(connection) as ctx:
        password_step(client)
    device_sql = _captured(ctx, "otp_auth_device", '"user_id" =')
    with CaptureQueriesContext(connection) as ctx:
        client.post("/account/login/verify/", {"code": last_code()})
    challenge_sql = _captured(ctx, "otp_auth_challenge", '"public_id" =')

    device_plan, challenge_plan = _plan(device_sql), _plan(challenge_sql)

    assert _uses_index(device_plan, "otp_auth_device"), device_plan
    assert _uses_index(challenge_plan, "otp_auth_challenge"), challenge_plan


@pytest.mark.django_db
def test_a_stored_anonymous_session_is_untouched_until_the_code_then_rotated(user, client):
    session = client.session
    session["basket"] = [1, 2]
    session.save()
    before = session.session_key

    assert password_step(client).status_code == 302
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == before  # no write
    assert client.post("/account/login/verify/", {"code": last_code()}).status_code == 302

    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not SessionStore().exists(before)
    assert client.session["basket"] == [1, 2]


@pytest.mark.django_db
def test_a_login_with_a_session_id_never_issued_gets_a_new_key(user, client):
    client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32  # a key the server never issued

    assert password_step(client).status_code == 302
    assert not SessionStore().exists("a" * 32)
    assert client.post("/account/login/verify/", {"code": last_code()}).status_code == 302

    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert key != "a" * 32
    assert SessionStore().exists(key)
    assert not SessionStore().exists("a" * 32)


@pytest.mark.django_db
def test_plain_password_is_never_stored_in_the_pending_login(user, client):
    password_step(client)
    pending = pending_of(client)
    assert pending and pending["flow_id"]
    assert PASSWORD not in str(pending)
    assert PASSWORD not in str(dict(client.session.items()))
