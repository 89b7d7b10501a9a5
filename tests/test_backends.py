"""``OTPBackend`` through Django's own ``authenticate`` and ``aauthenticate``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import aauthenticate, authenticate
from django.core.exceptions import PermissionDenied
from django.test import override_settings

from otp_auth.backends import OTPBackend
from otp_auth.constants import ChallengeStatus, Purpose
from otp_auth.exceptions import OTPBackendPermissionDenied
from otp_auth.models import Challenge
from otp_auth.services import issue_challenge
from tests.conftest import PASSWORD, last_code

pytestmark = pytest.mark.django_db

OTP_BACKEND = "otp_auth.backends.OTPBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class RecordingBackend:
    """Accepts the same credentials as ``OTPBackend``; records whether it was consulted."""

    calls: list[dict[str, Any]] = []

    def authenticate(self, request: Any, *, otp_challenge: Any = None, otp_code: Any = None):
        self.calls.append({"otp_challenge": otp_challenge})

    def get_user(self, user_id: Any) -> None:
        return None


@pytest.fixture(autouse=True)
def backends() -> Iterator[None]:
    RecordingBackend.calls = []
    with override_settings(
        AUTHENTICATION_BACKENDS=[MODEL_BACKEND, OTP_BACKEND, f"{__name__}.RecordingBackend"]
    ):
        yield


@pytest.fixture
def challenge(user: Any) -> Challenge:
    return issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_authenticate_with_challenge_and_code(rf: Any, user: Any, challenge: Challenge) -> None:
    request = rf.post("/")
    authenticated = authenticate(request, otp_challenge=challenge.public_id, otp_code=last_code())
    assert authenticated == user
    assert authenticated.backend == OTP_BACKEND
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.VERIFIED
    assert RecordingBackend.calls == []


def test_wrong_code_returns_none_and_counts(rf: Any, challenge: Challenge) -> None:
    code = last_code()
    assert (
        authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_code=wrong(code)) is None
    )
    challenge.refresh_from_db()
    assert challenge.attempts == 1
    # Returning None lets the chain go on, as for any refused credentials.
    assert RecordingBackend.calls == [{"otp_challenge": challenge.public_id}]


def test_code_is_single_use(rf: Any, user: Any, challenge: Challenge) -> None:
    code = last_code()
    assert authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_code=code) == user
    assert authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_code=code) is None


def test_only_login_challenges_are_accepted(rf: Any, user: Any) -> None:
    device = user.otp_devices.get()
    step_up = issue_challenge(user=user, device=device, purpose=Purpose.STEP_UP)
    code = last_code()
    assert authenticate(rf.post("/"), otp_challenge=step_up.public_id, otp_code=code) is None
    step_up.refresh_from_db()
    assert step_up.status == ChallengeStatus.PENDING


def test_username_and_password_never_reach_the_backend(rf: Any, user: Any) -> None:
    with mock.patch("otp_auth.backends.verify_challenge") as verify:
        # ModelBackend still logs the user in by password: OTPBackend is not consulted.
        assert authenticate(rf.post("/"), username="alice", password=PASSWORD) == user
        with override_settings(AUTHENTICATION_BACKENDS=[OTP_BACKEND]):
            assert authenticate(rf.post("/"), username="alice", password=PASSWORD) is None
            assert (
                authenticate(
                    rf.post("/"),
                    username="alice",
                    password=PASSWORD,
                    otp_challenge="x",
                    otp_code="123456",
                )
                is None
            )
    verify.assert_not_called()


def test_missing_credentials_are_not_checked(user: Any) -> None:
    backend = OTPBackend()
    with mock.patch("otp_auth.backends.verify_challenge") as verify:
        assert backend.authenticate(None, otp_challenge="abc") is None
        assert backend.authenticate(None, otp_code="123456") is None
    verify.assert_not_called()


def test_locked_challenge_raises_permission_denied(user: Any, challenge: Challenge) -> None:
    code = last_code()
    backend = OTPBackend()
    for _ in range(4):
        assert backend.authenticate(None, otp_challenge=challenge.public_id, otp_code="x") is None
    with pytest.raises(OTPBackendPermissionDenied) as info:
        backend.authenticate(None, otp_challenge=challenge.public_id, otp_code=wrong(code))
    assert isinstance(info.value, PermissionDenied)
    with pytest.raises(OTPBackendPermissionDenied):
        backend.authenticate(None, otp_challenge=challenge.public_id, otp_code=code)


def test_locked_challenge_stops_the_backend_chain(rf: Any, user: Any, challenge: Challenge) -> None:
    code = last_code()
    challenge.attempts = challenge.max_attempts
    challenge.status = ChallengeStatus.LOCKED
    challenge.save()
    assert authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_code=code) is None
    # PermissionDenied made Django stop: the next backend was never asked.
    assert RecordingBackend.calls == []


def test_inactive_user_is_refused(rf: Any, user: Any, challenge: Challenge) -> None:
    user.is_active = False
    user.save()
    code = last_code()
    assert authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_code=code) is None


def test_aauthenticate(user: Any, challenge: Challenge) -> None:
    code = last_code()
    backend = OTPBackend()
    assert (
        async_to_sync(backend.aauthenticate)(
            None, otp_challenge=challenge.public_id, otp_code=wrong(code)
        )
        is None
    )
    authenticated = async_to_sync(backend.aauthenticate)(
        None, otp_challenge=challenge.public_id, otp_code=code
    )
    assert authenticated == user


def test_django_aauthenticate(user: Any) -> None:
    challenge = issue_challenge(user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN)
    code = last_code()
    with override_settings(AUTHENTICATION_BACKENDS=[MODEL_BACKEND, OTP_BACKEND]):
        authenticated = async_to_sync(aauthenticate)(
            None, otp_challenge=challenge.public_id, otp_code=code
        )
    assert authenticated == user
    assert authenticated.backend == OTP_BACKEND


def test_locked_challenge_async_raises_permission_denied(user: Any, challenge: Challenge) -> None:
    Challenge.objects.filter(pk=challenge.pk).update(status=ChallengeStatus.LOCKED)
    with pytest.raises(OTPBackendPermissionDenied):
        async_to_sync(OTPBackend().aauthenticate)(
            None, otp_challenge=challenge.public_id, otp_code=last_code()
        )


def test_otp_token_keeps_the_code_out_of_user_login_failed(
    rf: Any, user: Any, challenge: Challenge
) -> None:
    from django.contrib.auth.signals import user_login_failed

    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
        seen.append(credentials)

    user_login_failed.connect(receiver)
    try:
        code = last_code()
        refused = authenticate(
            rf.post("/"), otp_challenge=challenge.public_id, otp_token=wrong(code)
        )
    finally:
        user_login_failed.disconnect(receiver)
    assert refused is None
    assert [c["otp_token"] for c in seen] == ["********************"]
    assert wrong(code) not in str(seen)
    challenge.refresh_from_db()
    assert challenge.attempts == 1  # the same check as with otp_code

    assert authenticate(rf.post("/"), otp_challenge=challenge.public_id, otp_token=code) == user
