"""``REQUIRE_ENROLLMENT``: nobody, everybody, staff only, or a callable decides who must
enroll a factor before reaching anything else; enrollment pages stay reachable."""

from __future__ import annotations

from typing import Any

import pytest

from otp_auth.checks import check_factors
from otp_auth.conf import app_settings
from otp_auth.exceptions import ConfigurationError
from otp_auth.services.factors import requires_enrollment
from tests.conftest import otp_settings
from tests.factor_helpers import TOTP_ADD, code_now, plain_login, secret_from_page

pytestmark = pytest.mark.django_db

DEVICE_ADD = "/account/devices/add/"


def needs_two_factor(user: Any) -> bool:
    """A site's own rule: accounts whose name starts with "sec" must enroll."""
    return bool(user.username.startswith("sec"))


class GroupRule:
    def __call__(self, user: Any) -> bool:
        return user.username == "alice"


@pytest.fixture
def deviceless(make_user: Any) -> Any:
    def make(username: str = "alice", **extra: Any) -> Any:
        return make_user(username, phone=None, **extra)

    return make


def reaches_private(client: Any) -> bool:
    response = client.get("/private/")
    if response.status_code == 302:
        assert response["Location"].startswith(f"{DEVICE_ADD}?next="), response["Location"]
        return False
    return response.status_code == 200


def test_off_by_default_a_user_without_factor_uses_the_password(client, deviceless):
    deviceless()
    plain_login(client)

    assert reaches_private(client)


def test_true_sends_every_user_without_factor_to_enrollment(client, deviceless):
    deviceless()
    with otp_settings(REQUIRE_ENROLLMENT=True):
        plain_login(client)
        assert not reaches_private(client)
        assert client.post("/private/").status_code == 403
        assert client.get(DEVICE_ADD).status_code == 200
        assert client.get(TOTP_ADD).status_code == 200


def test_enrolling_an_app_lets_the_user_through(client, deviceless, clock):
    deviceless()
    with otp_settings(REQUIRE_ENROLLMENT=True):
        plain_login(client)
        seed = secret_from_page(client.get(TOTP_ADD).content.decode())
        client.post(TOTP_ADD, {"code": code_now(seed)})

        assert reaches_private(client)


@pytest.mark.parametrize(
    "username, extra, required",
    [
        ("alice", {}, False),
        ("root", {"is_staff": True}, True),
        ("boss", {"is_superuser": True}, True),
    ],
)
def test_staff_means_staff_and_superusers(client, deviceless, username, extra, required):
    deviceless(username, **extra)
    with otp_settings(REQUIRE_ENROLLMENT="staff"):
        plain_login(client, username)

        assert reaches_private(client) is not required


@pytest.mark.parametrize(
    "policy",
    ["tests.test_enrollment_policy.needs_two_factor", needs_two_factor],
    ids=["dotted-path", "callable"],
)
def test_a_callable_decides_per_user(client, deviceless, policy):
    deviceless("alice")
    deviceless("security")
    with otp_settings(REQUIRE_ENROLLMENT=policy):
        plain_login(client, "alice")
        assert reaches_private(client)
        plain_login(client, "security")
        assert not reaches_private(client)


def test_a_callable_object_works_too(deviceless):
    with otp_settings(REQUIRE_ENROLLMENT=GroupRule()):
        assert requires_enrollment(deviceless("alice"))
        assert not requires_enrollment(deviceless("bob"))


def test_exempt_url_names_stay_reachable_before_enrollment(client, deviceless):
    deviceless()
    with otp_settings(REQUIRE_ENROLLMENT=True, EXEMPT_URL_NAMES=["public"]):
        plain_login(client)
        assert client.get("/public/").status_code == 200
        assert not reaches_private(client)


def test_the_admin_requires_enrollment_whatever_the_setting(client, deviceless):
    deviceless("root", is_staff=True, is_superuser=True)
    plain_login(client, "root")

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"{DEVICE_ADD}?next=")


@pytest.mark.parametrize(
    "value",
    ["all", "tests.test_enrollment_policy.missing", "no dots", 1, None, ["staff"]],
)
def test_bad_values_are_configuration_errors_and_fail_the_system_check(value):
    with otp_settings(REQUIRE_ENROLLMENT=value):
        with pytest.raises(ConfigurationError) as info:
            app_settings.REQUIRE_ENROLLMENT  # noqa: B018
        assert "REQUIRE_ENROLLMENT" in str(info.value)
        assert [m.id for m in check_factors()] == ["otp_auth.E007"]


@pytest.mark.parametrize("value", [True, False, "staff"])
def test_plain_values_are_returned_as_they_are(value):
    with otp_settings(REQUIRE_ENROLLMENT=value):
        assert value == app_settings.REQUIRE_ENROLLMENT
