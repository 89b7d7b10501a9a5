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
from tests.conftest import PASSWORD, last_code, login_fully, password_step

DB_SESSIONS = "django.contrib.sessions.backends.db"
CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
OTP_MIDDLEWARE = "otp_auth.middleware.OTPMiddleware"

# Queries per step. With database sessions, 12 of them are Django's own session handling
# (the session row made at the password step, the one key rotation at login, the loads);
# with cache sessions only auth's and the package's remain. The password step reads the
# user's devices, TOTP devices, security keys and lockout row, then writes the challenge,
# its delivery attempt and one audit event; the code step locks the challenge and the lockout row,
# consumes the challenge, stamps the device, writes one audit event, and Django updates
# last_login.
FLOW = {
    DB_SESSIONS: {"GET login": 0, "POST password": 12, "POST code": 15, "GET protected": 2},
    CACHE_SESSIONS: {"GET login": 0, "POST password": 8, "POST code": 8, "GET protected": 1},
}
FLOW_BUDGET = 17

counted = pytest.mark.django_db(transaction=True)


@pytest.fixture
def returning(user: Any) -> Any:
    """``user`` after one complete login elsewhere: what a returning user looks like."""
    login_fully(Client())
    return user


def flow_steps(client: Client) -> list[tuple[str, Any]]:
    return [
        ("GET login", lambda: client.get("/account/login/")),
        ("POST password", lambda: password_step(client)),
        ("POST code", lambda: client.post("/account/login/verify/", {"code": last_code()})),
        ("GET protected", lambda: client.get("/private/")),
    ]


EXPECTED_STATUS = {"GET login": 200, "POST password": 302, "POST code": 302, "GET protected": 200}


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
def test_the_whole_flow_stays_within_the_query_budget(returning):
    """The package's budget is 16 statements per flow. It is measured with cache sessions,
    where Django's session store makes no query; database sessions add Django's own session
    statements (12 here, against 8 for a plain password login, which rotates once)."""
    with override_settings(SESSION_ENGINE=CACHE_SESSIONS):
        client = Client()
        with CaptureQueriesContext(connection) as ctx:
            for _name, step in flow_steps(client):
                step()
        total = len(ctx)  # read now: the next request clears the query log
        assert client.get("/private/").content == b"private alice"
    assert total <= FLOW_BUDGET


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
def test_password_step_rotates_a_stored_anonymous_session(user, client):
    session = client.session
    session["basket"] = [1, 2]
    session.save()
    before = session.session_key

    assert password_step(client).status_code == 302

    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not SessionStore().exists(before)
    assert client.session["basket"] == [1, 2]


@pytest.mark.django_db
def test_password_step_without_a_stored_session_starts_one_with_a_new_key(user, client):
    client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32  # a key the server never issued

    assert password_step(client).status_code == 302

    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert key != "a" * 32
    assert SessionStore().exists(key)
    assert not SessionStore().exists("a" * 32)


@pytest.mark.django_db
def test_plain_password_is_never_stored_in_the_pending_session(user, client):
    password_step(client)
    assert PASSWORD not in str(dict(client.session.items()))
