"""DRF throttles are an extra layer (R47, R48, R49)."""

from __future__ import annotations

import ipaddress
import secrets

import pytest

pytest.importorskip("rest_framework")

from django.test import override_settings  # noqa: E402

from otp_auth.models import Challenge  # noqa: E402
from tests.api.conftest import LOGIN, VERIFY, start, verify, wrong  # noqa: E402
from tests.conftest import last_code  # noqa: E402

pytestmark = pytest.mark.django_db


def fresh_address() -> str:
    """A client address no other test (or test worker, or earlier run on a shared Redis)
    uses: a random one in the IPv6 documentation range."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | secrets.randbits(96)))


def rates(**scopes: str | None) -> dict[str, object]:
    from django.conf import settings

    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": scopes}


def test_the_login_throttle_answers_429_with_retry_after(api, user):
    address = fresh_address()
    with override_settings(REST_FRAMEWORK=rates(otp_login="2/min")):
        answers = [
            api.post(LOGIN, {"username": "nobody", "password": "x"}, REMOTE_ADDR=address)
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[-1].json()["code"] == "throttled"
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60


def test_a_forged_forwarded_for_header_does_not_escape_the_throttle(api, user):
    # R48: clients are told apart by REMOTE_ADDR, never by X-Forwarded-For.
    address = fresh_address()
    with override_settings(REST_FRAMEWORK=rates(otp_login="2/min")):
        codes = [
            api.post(
                LOGIN,
                {"username": "nobody", "password": "x"},
                REMOTE_ADDR=address,
                HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 429]


def test_the_default_rates_apply_without_configuration(api, user):
    address = fresh_address()
    with override_settings(REST_FRAMEWORK={}):
        codes = [
            # Another name each time: the per-account delay is not what this tests.
            api.post(
                LOGIN, {"username": f"nobody{i}", "password": "x"}, REMOTE_ADDR=address
            ).status_code
            for i in range(11)
        ]
    assert codes == [401] * 10 + [429]


def test_the_attempt_limit_holds_with_throttles_off(api, user):
    # R49: the services, not DRF, stop the guessing.
    with override_settings(REST_FRAMEWORK=rates(otp_login=None, otp_verify=None, otp_send=None)):
        challenge = start(api)
        code = last_code()
        answers = [verify(api, challenge, wrong(code)).json()["code"] for _ in range(8)]
        assert answers == ["invalid_code"] * 4 + ["challenge_locked"] * 4
        assert verify(api, challenge, code).json()["code"] == "challenge_locked"
    assert Challenge.objects.get().attempts == 5


def test_the_verify_throttle_counts_per_client_address(api, user):
    address = fresh_address()
    with override_settings(REST_FRAMEWORK=rates(otp_verify="1/min")):
        first = api.post(VERIFY, {"challenge": "x", "code": "1"}, REMOTE_ADDR=address)
        second = api.post(VERIFY, {"challenge": "x", "code": "1"}, REMOTE_ADDR=address)
        other = api.post(VERIFY, {"challenge": "x", "code": "1"}, REMOTE_ADDR=fresh_address())
    assert (first.status_code, second.status_code, other.status_code) == (401, 429, 401)
