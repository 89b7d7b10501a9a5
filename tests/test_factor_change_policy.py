"""The factor-change policy as a matrix: every factor kind x every path that changes one.

A user whose only factor is a phone, an email address or an authenticator app, holding a
verified session or API token that is *not* fresh, must not add, remove or regenerate
any factor by any path (HTML, API, admin); with a fresh second factor, each path works.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from otp_auth.conf import app_settings
from otp_auth.models import AuditEvent, Device, RecoveryCodeSet, TOTPDevice
from otp_auth.services import recovery
from tests.conftest import PASSWORD, last_code, password_step
from tests.factor_helpers import add_authenticator, code_now

pytest.importorskip("rest_framework")

from rest_framework.test import APIClient  # noqa: E402

pytestmark = pytest.mark.django_db

KINDS = ["phone", "email", "app"]
NEW_NUMBER = "+233201234999"


class Owner:
    """A user whose only factor is of ``kind``, and how to pass it."""

    def __init__(self, make_user: Any, kind: str, clock: Any, username: str = "alice") -> None:
        self.kind = kind
        self.clock = clock
        self.seed = b""
        if kind == "phone":
            self.user = make_user(username)
        elif kind == "email":
            self.user = make_user(username, phone=None, email=f"{username}@example.org")
        else:
            self.user = make_user(username, phone=None)
            _app, self.seed = add_authenticator(self.user)

    @property
    def factor(self) -> Device | TOTPDevice:
        if self.kind == "app":
            return TOTPDevice.objects.get(user=self.user)
        return Device.objects.get(user=self.user)

    def code(self) -> str:
        if self.kind == "phone":
            return last_code()
        if self.kind == "email":
            match = re.search(r"\b([0-9]{6})\b", mail.outbox[-1].body)
            assert match
            return match.group(1)
        self.clock.shift(app_settings.TOTP_PERIOD)  # an app code works once: the next one
        return code_now(self.seed)

    def sign_in(self, client: Client) -> None:
        assert password_step(client, self.user.get_username()).status_code == 302
        assert client.post("/account/login/verify/", {"code": self.code()}).status_code == 302

    def api_token(self, api: APIClient) -> str:
        started = api.post(
            "/api/login/", {"username": self.user.get_username(), "password": PASSWORD}
        )
        assert started.status_code == 202, started.content
        answer = api.post(
            "/api/login/verify/", {"challenge": started.json()["challenge"], "code": self.code()}
        )
        assert answer.status_code == 200, answer.content
        token = str(answer.json()["token"])
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return token

    def step_up(self, client: Client) -> None:
        if self.kind == "app":
            data = {"factor": "totp", "code": self.code()}
        else:
            client.post("/account/step-up/", {"send": "1"})
            data = {"code": self.code()}
        assert client.post("/account/step-up/", data).status_code == 302

    def api_proof(self, api: APIClient) -> dict[str, str]:
        if self.kind == "app":
            return {"code": self.code()}
        sent = api.post("/api/step-up/", {})
        assert sent.status_code == 202, sent.content
        return {"challenge": sent.json()["challenge"], "code": self.code()}


# The paths. Each takes (owner, client) and returns a predicate "the change happened".


def html_add_device(owner: Owner, client: Client) -> Callable[[], bool]:
    client.post("/account/devices/add/", {"channel": "sms", "destination": NEW_NUMBER})
    return lambda: Device.objects.filter(phone_number=NEW_NUMBER).exists()


def html_add_app(owner: Owner, client: Client) -> Callable[[], bool]:
    page = client.get("/account/authenticator/add/")  # shows a new seed: the change begins
    return lambda: page.status_code == 200


def html_remove_factor(owner: Owner, client: Client) -> Callable[[], bool]:
    factor = owner.factor
    kind = "authenticator" if owner.kind == "app" else "devices"
    client.post(f"/account/{kind}/{factor.pk}/remove/")
    return lambda: not type(factor).objects.filter(pk=factor.pk).exists()


def html_recovery_codes(owner: Owner, client: Client) -> Callable[[], bool]:
    client.post("/account/recovery-codes/")
    return lambda: RecoveryCodeSet.objects.filter(user=owner.user).exists()


HTML_PATHS = [html_add_device, html_add_app, html_remove_factor, html_recovery_codes]


def api_add_device(owner: Owner, api: APIClient, proof: Any = None) -> Callable[[], bool]:
    body: dict[str, Any] = {"channel": "sms", "destination": NEW_NUMBER}
    if proof:
        body["step_up"] = proof
    api.post("/api/devices/", body, format="json")
    return lambda: Device.objects.filter(phone_number=NEW_NUMBER).exists()


def api_remove_device(owner: Owner, api: APIClient, proof: Any = None) -> Callable[[], bool]:
    device = Device.objects.filter(user=owner.user).first()
    assert device is not None
    api.post(f"/api/devices/{device.pk}/remove/", {"step_up": proof} if proof else {}, "json")
    return lambda: not Device.objects.filter(pk=device.pk).exists()


def _give_a_device(owner: Owner) -> None:
    """Before signing in: an app-only owner gets a second, removable factor."""
    if not Device.objects.filter(user=owner.user).exists():
        Device.objects.create(
            user=owner.user, email="second@example.org", channels=["email"], confirmed=True
        )


api_remove_device.prepare = _give_a_device  # type: ignore[attr-defined]


def prepare(path: Any, owner: Owner) -> None:
    getattr(path, "prepare", lambda owner: None)(owner)


API_PATHS = [api_add_device, api_remove_device]

ADMIN_MODELS = {"device": Device, "totpdevice": TOTPDevice, "recoverycodeset": RecoveryCodeSet}


def admin_delete(client: Client, model: str, pk: int) -> None:
    client.post(f"/admin/otp_auth/{model}/{pk}/delete/", {"post": "yes"})


def stale(clock: Any) -> None:
    clock.shift(app_settings.STEP_UP_MAX_AGE + 1)


# HTML -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", HTML_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("kind", KINDS)
def test_html_refuses_a_factor_change_without_a_fresh_factor(make_user, clock, kind, path):
    owner = Owner(make_user, kind, clock)
    client = Client()
    owner.sign_in(client)
    stale(clock)

    changed = path(owner, client)

    assert not changed()


@pytest.mark.parametrize("path", HTML_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("kind", KINDS)
def test_html_allows_a_factor_change_after_a_fresh_factor(make_user, clock, kind, path):
    owner = Owner(make_user, kind, clock)
    client = Client()
    owner.sign_in(client)
    stale(clock)
    owner.step_up(client)

    changed = path(owner, client)

    assert changed()


# API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", API_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("kind", KINDS)
def test_a_verified_token_alone_cannot_change_a_factor(make_user, clock, kind, path):
    owner = Owner(make_user, kind, clock)
    prepare(path, owner)
    api = APIClient()
    owner.api_token(api)

    changed = path(owner, api)

    assert not changed()


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_refusal_is_step_up_required(make_user, clock, kind):
    owner = Owner(make_user, kind, clock)
    api = APIClient()
    owner.api_token(api)

    answer = api.post("/api/devices/", {"channel": "sms", "destination": NEW_NUMBER}, "json")

    assert answer.status_code == 403
    assert answer.json()["code"] == "step_up_required"


@pytest.mark.parametrize("path", API_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("kind", KINDS)
def test_the_api_allows_a_factor_change_with_a_fresh_proof(make_user, clock, kind, path):
    owner = Owner(make_user, kind, clock)
    prepare(path, owner)
    api = APIClient()
    owner.api_token(api)
    stale(clock)

    changed = path(owner, api, owner.api_proof(api))

    assert changed()


def test_an_app_only_account_cannot_be_taken_over_through_the_api(make_user, clock):
    """The chain: a stolen verified token adds a phone, passes step-up with it, adds a
    second one, then resets the password with the two. The first step is refused."""
    owner = Owner(make_user, "app", clock)
    api = APIClient()
    owner.api_token(api)

    answer = api.post("/api/devices/", {"channel": "sms", "destination": NEW_NUMBER}, "json")

    assert answer.status_code == 403
    assert not Device.objects.filter(user=owner.user).exists()
    assert not any(m.destination == NEW_NUMBER for m in _locmem())


def _locmem() -> list[Any]:
    from otp_auth.providers import locmem

    return list(locmem.outbox)


# Admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff(make_user: Any, clock: Any) -> Owner:
    owner = Owner(make_user, "phone", clock, username="root")
    owner.user.is_staff = owner.user.is_superuser = True
    owner.user.save()
    return owner


def _target(owner: Owner, model: str) -> Any:
    if model == "recoverycodeset":
        recovery.generate_codes(owner.user)
        return RecoveryCodeSet.objects.get(user=owner.user)
    if model == "totpdevice":
        app = TOTPDevice.objects.filter(user=owner.user).first()
        if app is None:
            app = add_authenticator(owner.user)[0]
            # The device stays the default factor at sign-in.
            Device.objects.filter(user=owner.user).update(last_used_at=timezone.now())
        return app
    return Device.objects.filter(user=owner.user).first() or Device.objects.create(
        user=owner.user, email="alice@example.org", channels=["email"], confirmed=True
    )


@pytest.mark.parametrize("model", ADMIN_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_the_admin_refuses_a_deletion_without_the_staff_members_fresh_factor(
    make_user, staff, clock, kind, model
):
    owner = Owner(make_user, kind, clock)
    row = _target(owner, model)
    client = Client()
    staff.sign_in(client)
    stale(clock)

    admin_delete(client, model, row.pk)

    assert ADMIN_MODELS[model].objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("model", ADMIN_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_an_admin_deletion_goes_through_the_services(
    make_user, staff, clock, mailoutbox, kind, model
):
    owner = Owner(make_user, kind, clock)
    row = _target(owner, model)
    victim_session = Client()
    owner.sign_in(victim_session)
    victim_api = APIClient()
    owner.api_token(victim_api)
    client = Client()
    staff.sign_in(client)
    mail.outbox.clear()

    admin_delete(client, model, row.pk)

    assert not ADMIN_MODELS[model].objects.filter(pk=row.pk).exists()
    removed = AuditEvent.objects.filter(kind=AuditEvent.Kind.FACTOR_REMOVED, user=owner.user)
    assert removed.exists() and all(e.actor_id == staff.user.pk for e in removed)
    assert victim_session.get("/private/")["Location"].startswith("/account/login/")
    assert victim_api.get("/api/me/").status_code in (401, 403)
    assert any("removed" in m.subject for m in mail.outbox if owner.user.email in m.to)
