"""Session handling around the second factor: what a partial session can reach, what the
session stores, key rotation, timeouts, redirects, CSRF and cross-session codes."""

from __future__ import annotations

import base64
import itertools
import json
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.utils.regex_helper import normalize

from otp_auth.constants import PENDING_COOKIE_NAME, ChallengeStatus
from otp_auth.exceptions import InvalidCodeError
from otp_auth.models import Challenge, Device
from tests.conftest import (
    PASSWORD,
    last_code,
    login_fully,
    otp_settings,
    password_step,
    pending_of,
    wrong_code,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unique_codes")]

LOGIN = "/account/login/"
VERIFY = "/account/login/verify/"
RESEND = "/account/login/resend/"
INVALID = str(InvalidCodeError.default_message)


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def is_logged_in(client: Client) -> bool:
    return client.get("/private/").status_code == 200


def plain_login(client: Client, username: str = "alice") -> None:
    """Password only, through Django's own LoginView: no second factor yet."""
    response = client.post("/plain-login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def challenge_of(client: Client) -> Challenge:
    pending = pending_of(client)
    assert pending is not None
    return Challenge.objects.get(public_id=pending["challenge_id"])


# R12: neither the session nor the pending-login cookie stores the password or the code.


def raw_pending(client: Client) -> str:
    """The pending-login cookie, raw and decoded."""
    pending = pending_of(client)
    assert pending, "no pending login: nothing was checked"
    return client.cookies[PENDING_COOKIE_NAME].value + json.dumps(pending)


def raw_session(client: Client) -> str:
    """Everything the session backend stores for this client, raw and decoded."""
    engine = settings.SESSION_ENGINE
    value = session_key(client)
    if engine == "django.contrib.sessions.backends.db":
        raw = Session.objects.get(session_key=value).session_data
        decoded = Session.objects.get(session_key=value).get_decoded()
    elif engine == "django.contrib.sessions.backends.cache":
        store = import_module(engine).SessionStore
        decoded = caches[settings.SESSION_CACHE_ALIAS].get(store.cache_key_prefix + value)
        raw = repr(decoded)
    else:
        raw = value
        decoded = signing.loads(
            value,
            salt="django.contrib.sessions.backends.signed_cookies",
            serializer=signing.JSONSerializer,
        )
    assert decoded, "the session is empty: nothing was checked"
    return raw + json.dumps(decoded)


def secret_forms(secret: str) -> list[str]:
    encoded = secret.encode()
    b64 = [base64.b64encode(encoded).decode(), base64.urlsafe_b64encode(encoded).decode()]
    return [secret, *b64, *(b.rstrip("=") for b in b64)]


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_session_never_holds_the_password_or_the_code(client, user, clock, engine):
    with override_settings(SESSION_ENGINE=engine):
        password_step(client)
        first = last_code()
        after_password = raw_pending(client)
        assert "flow_id" in after_password
        clock.shift(61)
        client.post(RESEND)
        second = last_code()
        after_resend = raw_pending(client)
        client.post(VERIFY, {"code": second})
        after_login = raw_session(client)
        assert "_otp_auth_verified" in after_login

    for stored in (after_password, after_resend, after_login):
        for needle in [*secret_forms(PASSWORD), first, second]:
            assert needle not in stored


# R14: the code never comes back in a response.


def exposed(response: Any) -> str:
    parts = [response.content.decode(errors="replace"), response.cookies.output()]
    parts += [f"{name}: {value}" for name, value in response.headers.items()]
    return "\n".join(parts)


@pytest.mark.parametrize("debug", [False, True])
def test_responses_never_carry_the_code(client, user, clock, debug):
    with override_settings(DEBUG=debug):
        step = password_step(client)
        first = last_code()
        page = client.get(step["Location"])
        clock.shift(61)
        resend = client.post(RESEND)
        second = last_code()
        after = client.get(resend["Location"])

    assert step.status_code == resend.status_code == 302
    for response in (step, page, resend, after):
        assert first not in exposed(response)
        assert second not in exposed(response)


# R27, R28: a code only works in the flow and session it was issued for.


def test_another_users_code_is_refused_and_counts_against_the_flow(client, make_user):
    make_user("alice")
    make_user("bob", phone="+233201234567")
    password_step(client, "alice")
    alice_code, alice_challenge = last_code(), challenge_of(client)
    bob = Client()
    password_step(bob, "bob")

    response = bob.post(VERIFY, {"code": alice_code})

    assert response.context["form"].errors == {"code": [INVALID]}
    assert challenge_of(bob).attempts == 1
    alice_challenge.refresh_from_db()
    assert (alice_challenge.status, alice_challenge.attempts) == (ChallengeStatus.PENDING, 0)
    assert not is_logged_in(bob)
    client.post(VERIFY, {"code": alice_code})
    assert client.get("/private/").content == b"private alice"


def test_a_code_from_another_session_is_refused_whatever_the_post_says(client, user, make_user):
    bob = make_user("bob", phone="+233201234567")
    password_step(client)
    first_code, first_challenge = last_code(), challenge_of(client)
    second = Client()
    password_step(second)
    second_code = last_code()

    response = second.post(
        VERIFY,
        {
            "code": first_code,
            "challenge": first_challenge.public_id,
            "user_id": user.pk,
            "username": "alice",
        },
    )

    assert response.context["form"].errors == {"code": [INVALID]}
    assert challenge_of(second).attempts == 1
    first_challenge.refresh_from_db()
    assert first_challenge.attempts == 0
    assert not is_logged_in(second)

    second.post(VERIFY, {"code": second_code, "user_id": bob.pk, "username": "bob"})

    assert second.get("/private/").content == b"private alice"


# R37: client-side claims change nothing.


def test_client_side_verified_claims_are_ignored(client, user):
    plain_login(client)
    client.cookies["otp_verified"] = "true"
    client.cookies["_otp_auth_verified"] = "true"

    get = client.get("/private/?otp_verified=true", HTTP_X_OTP_VERIFIED="true")
    post = client.post("/private/", {"otp_verified": "true", "verified": "true"})

    assert get.status_code == 302
    assert get["Location"].startswith(VERIFY)
    assert post.status_code == 403
    assert post.json()["code"] == "otp_required"
    assert not get.wsgi_request.user.is_verified()


def test_a_verified_field_does_not_pass_the_code_step(client, user):
    password_step(client)

    client.post(VERIFY, {"code": wrong_code(last_code()), "otp_verified": "true"})

    assert not is_logged_in(client)


# R52: a password-only session reaches nothing but the allow-list.

ALLOWED = {
    "otp_auth:login",
    "otp_auth:verify",
    "otp_auth:resend",
    "otp_auth:switch",
    "otp_auth:cancel",
    "otp_auth:logout",
    "admin:logout",
    # The DRF API's login steps and logout (routed when DRF is installed).
    "otp_auth_api:csrf",
    "otp_auth_api:login",
    "otp_auth_api:verify",
    "otp_auth_api:resend",
    "otp_auth_api:switch",
    "otp_auth_api:cancel",
    "otp_auth_api:logout",
    # Password reset by code, for people who cannot sign in (pages and API).
    "otp_auth:password_reset",
    "otp_auth:password_reset_verify",
    "otp_auth:password_reset_new",
    "otp_auth:password_reset_send",
    "otp_auth_api:password_reset",
    "otp_auth_api:password_reset_verify",
    "otp_auth_api:password_reset_send",
    "otp_auth_api:password_reset_complete",
}
FILLERS = ("1", "auth", "otp_auth")


def _fills(pattern: Any) -> list[str]:
    """Concrete strings for one URL pattern: every named group tried with each filler."""
    out = []
    for fmt, params in normalize(pattern.regex.pattern):
        for values in itertools.product(FILLERS, repeat=len(params)):
            out.append(fmt % dict(zip(params, values, strict=True)))
    return out


def concrete_urls() -> dict[str, str]:
    """One URL per resolvable pattern of the URLconf: ``{url: view name}``."""
    urls: dict[str, str] = {}
    unreachable: list[str] = []

    def walk(patterns: list[Any], prefixes: list[str]) -> None:
        for entry in patterns:
            candidates = [a + b for a in prefixes for b in _fills(entry.pattern)]
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, candidates)
                continue
            for candidate in candidates:
                try:
                    match = resolve(f"/{candidate}")
                except Resolver404:
                    continue
                if match.func is entry.callback:
                    urls[f"/{candidate}"] = match.view_name
                    break
            else:
                unreachable.append(str(entry.pattern))

    walk(get_resolver().url_patterns, [""])
    assert not unreachable, unreachable
    return urls


def test_every_url_is_refused_to_a_password_only_session(client, make_user):
    user = make_user(is_staff=True, is_superuser=True)
    urls = concrete_urls()
    names = set(urls.values())
    assert {"private", "otp_auth:devices", "admin:index", "admin:app_list"} <= names
    assert "admin:auth_user_password_change" in names
    assert "/admin/auth/group/1/" in urls and "/admin/1" in urls  # unnamed admin routes
    plain_login(client)

    checked = 0
    for url, name in urls.items():
        if name in ALLOWED:
            continue
        get = client.get(url)
        assert get.status_code in (302, 403), (url, get.status_code)
        if get.status_code == 302:
            assert get["Location"].startswith(f"{VERIFY}?next="), (url, get["Location"])
        post = client.post(url)
        assert post.status_code == 403, (url, post.status_code)
        assert post.json()["code"] == "otp_required", url
        checked += 1

    assert checked == len(urls) - len(ALLOWED & names) > 40
    assert Device.objects.filter(user=user).count() == 1
    assert not Challenge.objects.exists()
    assert "_otp_auth_verified" not in client.session


def test_a_post_without_csrf_token_from_a_password_only_session_is_refused(client, user):
    plain_login(client)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies

    response = strict.post("/private/")

    assert response.status_code == 403


# R53: a partial session is not a login.


def test_partial_session_is_anonymous(client, user):
    password_step(client)

    home = client.get("/home/")
    private = client.get("/private/")

    assert home.content == b"home "
    assert not home.wsgi_request.user.is_authenticated
    assert not home.wsgi_request.user.is_verified()
    assert private.status_code == 302
    assert private["Location"] == f"{LOGIN}?next=/private/"


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/account/devices/"),
        ("get", "/account/devices/add/"),
        ("get", "/account/devices/confirm/"),
        ("get", "/account/step-up/"),
        ("post", "/account/devices/add/"),
        ("post", "/account/devices/1/remove/"),
        ("post", "/account/step-up/"),
    ],
)
def test_partial_session_cannot_manage_devices(client, user, outbox, method, url):
    password_step(client)
    device = Device.objects.get(user=user)

    response = getattr(client, method)(
        url.replace("/1/", f"/{device.pk}/"),
        {"channel": "sms", "destination": "+233201234567", "send": "1"},
    )

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN) or "step-up" in response["Location"]
    assert Device.objects.filter(user=user).count() == 1
    assert len(outbox) == 1


# R54, R55: the session key changes at each step; old keys die.


def test_session_key_changes_when_the_code_is_accepted(client, user):
    client.get("/account/login/")
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["basket"] = [1]
    store.create()
    partial = store.session_key
    client.cookies[settings.SESSION_COOKIE_NAME] = partial
    password_step(client)
    assert session_key(client) == partial  # nothing is written before the second factor

    client.post(VERIFY, {"code": last_code()})

    assert session_key(client) != partial
    assert not import_module(settings.SESSION_ENGINE).SessionStore().exists(partial)
    old = Client()
    old.cookies[settings.SESSION_COOKIE_NAME] = partial
    assert not is_logged_in(old)
    assert is_logged_in(client)


def test_a_fixed_pre_login_session_id_never_carries_the_login(client, user):
    """The partial login lives in its own signed cookie, never under the session id,
    and the session gets a new key when the code is accepted: a planted id reaches
    neither the pending login nor the account."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store["planted"] = "by someone else"
    store.create()
    fixed = store.session_key
    client.cookies[settings.SESSION_COOKIE_NAME] = fixed

    password_step(client)
    planted = Client()
    planted.cookies[settings.SESSION_COOKIE_NAME] = fixed
    assert planted.get(VERIFY)["Location"].startswith(LOGIN)  # no pending login there
    client.post(VERIFY, {"code": last_code()})
    final = session_key(client)

    assert final != fixed
    assert not store.exists(fixed)
    assert is_logged_in(client)
    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = fixed
    assert not is_logged_in(attacker)
    assert attacker.get("/home/").content == b"home "


# R56: the partial state expires.


def test_code_after_login_timeout_is_refused_and_the_flow_restarts(client, user, clock):
    with otp_settings(LOGIN_TIMEOUT=120, CODE_TTL=600):
        password_step(client)
        code, challenge = last_code(), challenge_of(client)
        clock.shift(121)

        response = client.post(VERIFY, {"code": code})

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert "took too long" in client.get(LOGIN).content.decode()
    assert pending_of(client) is None
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.CANCELLED
    assert not is_logged_in(client)


# R57: logging out during the partial state ends it.


def test_logout_during_the_partial_state_cancels_the_challenge(client, user):
    password_step(client)
    code, challenge = last_code(), challenge_of(client)

    response = client.post("/account/logout/")

    assert response.status_code == 302
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.CANCELLED
    assert pending_of(client) is None
    client.post(VERIFY, {"code": code})
    assert not is_logged_in(client)


# R58: only same-site next URLs survive the flow.


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "////evil.example",
        "/\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_unsafe_next_goes_to_the_default_url(client, user, target):
    page = client.get(LOGIN, {"next": target}).content.decode()
    password_step(client, next=target)

    response = client.post(VERIFY, {"code": last_code()})

    assert "evil" not in page and "javascript" not in page
    assert response["Location"] == "/home/"


def test_safe_next_with_a_query_is_kept_across_the_code_step(client, user):
    page = client.get(LOGIN, {"next": "/dashboard/?a=1"}).content.decode()
    password_step(client, next="/dashboard/?a=1")

    response = client.post(VERIFY, {"code": last_code()})

    assert 'name="next" value="/dashboard/?a=1"' in page
    assert response["Location"] == "/dashboard/?a=1"


# R59: state-changing views need POST and a CSRF token.

WITHOUT_CSRF_MIDDLEWARE = [
    m for m in settings.MIDDLEWARE if m != "django.middleware.csrf.CsrfViewMiddleware"
]


def _enter(state: str, client: Client, user: Any) -> dict[str, str]:
    """Put ``client`` in ``state``; return the URLs that need an id."""
    if state == "partial":
        password_step(client)
    elif state == "verified":
        login_fully(client)
    device = Device.objects.get(user=user)
    return {"remove": f"/account/devices/{device.pk}/remove/"}


def _snapshot() -> tuple[Any, ...]:
    from otp_auth.providers import locmem

    return (
        len(locmem.outbox),
        sorted(Challenge.objects.values_list("pk", "status", "attempts")),
        sorted(Device.objects.values_list("pk", "confirmed")),
    )


@pytest.mark.parametrize("middleware", ["default", "no_csrf_middleware"])
@pytest.mark.parametrize(
    "state, url, data",
    [
        ("anonymous", "/account/login/", {"username": "alice", "password": PASSWORD}),
        ("partial", "/account/login/verify/", {"code": "123456"}),
        ("partial", "/account/login/resend/", {}),
        ("partial", "/account/login/switch/", {"device": "1"}),
        ("partial", "/account/login/cancel/", {}),
        ("verified", "/account/logout/", {}),
        ("verified", "/account/devices/add/", {"channel": "sms", "destination": "0201234567"}),
        ("verified", "/account/devices/confirm/", {"code": "123456"}),
        ("verified", "remove", {}),
        ("verified", "/account/step-up/", {"send": "1"}),
    ],
)
def test_post_without_csrf_token_is_forbidden(client, user, middleware, state, url, data):
    urls = _enter(state, client, user)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    before = _snapshot()
    chain = settings.MIDDLEWARE if middleware == "default" else WITHOUT_CSRF_MIDDLEWARE

    with override_settings(MIDDLEWARE=chain):
        response = strict.post(urls.get(url, url), data)

    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content
    assert _snapshot() == before
    if state == "verified":
        assert is_logged_in(client)


@pytest.mark.parametrize(
    "state, url",
    [
        ("partial", "/account/login/resend/"),
        ("partial", "/account/login/switch/"),
        ("partial", "/account/login/cancel/"),
        ("verified", "/account/logout/"),
        ("verified", "remove"),
    ],
)
def test_get_on_state_changing_views_is_not_allowed(client, user, state, url):
    urls = _enter(state, client, user)
    before = _snapshot()

    response = client.get(urls.get(url, url))

    assert response.status_code == 405
    assert _snapshot() == before


# The pending-login cookie: signed, spent by its login, never a second login.


def test_a_pending_login_replayed_after_its_login_logs_nobody_in(client, user):
    from tests.factor_helpers import add_authenticator, code_now

    user.otp_devices.all().delete()
    _app, seed = add_authenticator(user)
    password_step(client)
    replayed = client.cookies[PENDING_COOKIE_NAME].value
    client.post(VERIFY, {"code": code_now(seed)})
    assert is_logged_in(client)

    thief = Client()
    thief.cookies[PENDING_COOKIE_NAME] = replayed
    response = thief.post(VERIFY, {"code": code_now(seed, offset_steps=1)})

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert not is_logged_in(thief)


def test_a_pending_login_cookie_not_signed_here_is_no_pending_login(client, user):
    password_step(client)
    forged = client.cookies[PENDING_COOKIE_NAME].value[:-2] + "xx"
    other = Client()
    other.cookies[PENDING_COOKIE_NAME] = forged

    response = other.post(VERIFY, {"code": last_code()})

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert not is_logged_in(other)
