"""Background sending (``SEND_IN_BACKGROUND``): the request issues and enqueues, a worker
sends once per ticket, and nothing revives a challenge that closed before its send ran.

Most tests stand in for the queue with a list (``queue``) and play the worker by calling
``sending.deliver`` with the task's arguments, as an at-least-once broker would, including
twice. One test goes through the Tasks framework's immediate backend; a real worker process
is in ``test_background_worker.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, TestCase

from otp_auth.constants import ChallengeStatus
from otp_auth.exceptions import ProviderTimeoutError, ProviderUnavailableError
from otp_auth.models import AuditEvent, Challenge, DeliveryAttempt
from otp_auth.providers import get_provider, locmem
from otp_auth.services import challenges, epoch, sending
from tests.conftest import last_code, otp_settings, password_step
from tests.fakes import FakeArkesel, FakeTwilio
from tests.fakes.server import Reply
from tests.providers.conftest import arkesel_options, code_in, twilio_options

pytestmark = pytest.mark.django_db

BACKGROUND = {"SEND_IN_BACKGROUND": True}


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Enqueued sends land here (their keyword arguments) instead of a broker."""
    jobs: list[dict[str, Any]] = []

    def capture(kwargs: dict[str, Any], delay: float = 0) -> None:
        jobs.append(dict(kwargs))

    monkeypatch.setattr(sending, "_enqueue", capture)
    with otp_settings(**BACKGROUND):
        yield jobs


def run(job: dict[str, Any]) -> str:
    """Play the worker: one run of the task, its commit included (a retry is enqueued then)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return sending.deliver(**job)


def issue(user: Any, django_capture_on_commit_callbacks: Any) -> Challenge:
    with django_capture_on_commit_callbacks(execute=True):
        return challenges.issue_challenge(
            user=user, device=user.otp_devices.get(), purpose="login", flow_id="f" * 32
        )


def test_the_request_sends_nothing_and_the_task_carries_no_code(
    user, queue, outbox, django_capture_on_commit_callbacks
):
    challenge = issue(user, django_capture_on_commit_callbacks)
    assert outbox == []
    row = Challenge.objects.get(pk=challenge.pk)
    assert (row.send_state, row.delivery_status, row.code_hash) == ("queued", "sending", "")
    assert len(queue) == 1
    job = queue[0]
    assert set(job) == {"challenge", "ticket", "epoch", "first", "attempt"}
    assert job["challenge"] == row.public_id and job["ticket"] == row.send_ticket
    assert run(job) == "sent"
    row.refresh_from_db()
    code = last_code()
    # Nothing in the task's arguments is, or derives from, the code that was sent.
    assert all(code not in str(value) and row.code_hash != str(value) for value in job.values())
    assert (row.send_state, row.status) == ("sent", ChallengeStatus.PENDING)
    assert row.code_hash
    verified = challenges.verify_challenge(row.public_id, code, purpose="login", user=user)
    assert verified.status == ChallengeStatus.VERIFIED


def test_a_task_run_again_after_the_vendor_accepted_sends_once(
    user, queue, outbox, django_capture_on_commit_callbacks
):
    challenge = issue(user, django_capture_on_commit_callbacks)
    assert run(queue[0]) == "sent"
    assert run(queue[0]) == "done"
    assert run(queue[0]) == "done"
    assert len(outbox) == 1
    assert DeliveryAttempt.objects.filter(challenge=challenge).count() == 1
    kinds = AuditEvent.objects.filter(challenge_pk=challenge.pk, kind="code_sent").count()
    assert kinds == 1


def test_a_worker_that_died_after_the_vendor_accepted_is_not_repeated(
    user, queue, outbox, monkeypatch, django_capture_on_commit_callbacks
):
    """The crash comes between the vendor's answer and the record: the ticket stays
    ``sending``, and a redelivered task may not call the vendor again."""
    challenge = issue(user, django_capture_on_commit_callbacks)

    def crash(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(sending, "_record_success", crash)
        with pytest.raises(RuntimeError):
            run(queue[0])
    assert len(outbox) == 1
    assert run(queue[0]) == "done"
    assert len(outbox) == 1
    row = Challenge.objects.get(pk=challenge.pk)
    assert row.send_state == "sending"
    # The code the vendor took is the one the row holds.
    challenges.verify_challenge(row.public_id, last_code(), purpose="login", user=user)


def test_a_task_for_a_cancelled_challenge_sends_nothing(
    user, queue, outbox, django_capture_on_commit_callbacks
):
    challenge = issue(user, django_capture_on_commit_callbacks)
    assert challenges.cancel_challenge(challenge.public_id, user=user)
    assert run(queue[0]) == "dropped"
    assert outbox == []
    row = Challenge.objects.get(pk=challenge.pk)
    assert (row.status, row.send_state, row.code_hash) == ("cancelled", "dropped", "")
    assert not DeliveryAttempt.objects.filter(challenge=challenge).exists()


def test_a_task_for_a_superseded_send_sends_nothing(
    user, queue, outbox, clock, django_capture_on_commit_callbacks
):
    """A resend replaces the ticket: the first task is a no-op, the second sends; a device
    switch cancels the challenge, and its task sends nothing either."""
    challenge = issue(user, django_capture_on_commit_callbacks)
    clock.shift(61)
    with django_capture_on_commit_callbacks(execute=True):
        challenges.resend_challenge(challenge.public_id, user=user)
    assert len(queue) == 2 and queue[0]["ticket"] != queue[1]["ticket"]
    assert run(queue[0]) == "done"
    assert outbox == []
    assert run(queue[1]) == "sent"
    assert len(outbox) == 1
    clock.shift(61)
    with django_capture_on_commit_callbacks(execute=True):
        challenges.resend_challenge(challenge.public_id, user=user)
    clock.shift(61)
    switched_to = user.otp_devices.create(
        phone_number="+233241234568", channels=["sms"], confirmed=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        challenges.send_in_flow(challenge.flow_id, user=user, device=switched_to)
    assert Challenge.objects.get(pk=challenge.pk).status == ChallengeStatus.CANCELLED
    assert run(queue[2]) == "dropped"
    assert len(outbox) == 1
    assert run(queue[3]) == "sent"
    assert len(outbox) == 2 and outbox[-1].destination == "+233241234568"


def test_a_task_for_an_expired_challenge_sends_nothing(
    user, queue, outbox, clock, django_capture_on_commit_callbacks
):
    challenge = issue(user, django_capture_on_commit_callbacks)
    clock.shift(601)
    assert run(queue[0]) == "dropped"
    assert outbox == []
    assert Challenge.objects.get(pk=challenge.pk).status == ChallengeStatus.EXPIRED


def test_a_task_queued_before_the_epoch_moved_sends_nothing(
    user, queue, outbox, django_capture_on_commit_callbacks
):
    challenge = issue(user, django_capture_on_commit_callbacks)
    epoch.advance(user, reason="password")
    assert run(queue[0]) == "dropped"
    assert outbox == []
    row = Challenge.objects.get(pk=challenge.pk)
    assert row.status == ChallengeStatus.CANCELLED
    assert AuditEvent.objects.filter(challenge_pk=row.pk, kind="cancelled", reason="epoch").exists()


class Failing(locmem.LocmemProvider):
    """Refuses every send with the error in ``OPTIONS["error"]`` (nothing sent)."""

    calls = 0

    def deliver(self, message: Any) -> Any:
        type(self).calls += 1
        raise self.options["error"]("down", provider="failing")


@pytest.fixture
def failing(settings: Any) -> Iterator[type[Failing]]:
    Failing.calls = 0
    yield Failing
    get_provider.cache_clear()


def use_failing(settings: Any, error: type[Exception], **extra: Any) -> None:
    settings.OTP_AUTH = {
        **settings.OTP_AUTH,
        **BACKGROUND,
        "PROVIDERS": {
            "default": {
                "BACKEND": f"{__name__}.Failing",
                "OPTIONS": {"error": error},
                "CIRCUIT": {"FAILURES": 100, "WINDOW": 60, "COOL_OFF": 30},
            },
            "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
        },
        **extra,
    }
    get_provider.cache_clear()


def test_every_vendor_refusing_is_tried_again_then_fails(
    user, queue, settings, failing, django_capture_on_commit_callbacks
):
    use_failing(settings, ProviderUnavailableError, SEND_RETRIES=2)
    challenge = issue(user, django_capture_on_commit_callbacks)
    assert run(queue[0]) == "retrying"
    assert Challenge.objects.get(pk=challenge.pk).send_state == "queued"
    assert run(queue[1]) == "retrying"
    assert run(queue[2]) == "failed"
    assert [job["attempt"] for job in queue] == [1, 2, 3]
    assert failing.calls == 3
    row = Challenge.objects.get(pk=challenge.pk)
    assert (row.status, row.send_state, row.delivery_status) == ("send_failed", "failed", "failed")
    assert DeliveryAttempt.objects.filter(challenge=challenge).count() == 3
    # A retried task of a closed send never calls again.
    assert run(queue[0]) == "done" and failing.calls == 3


def test_a_send_whose_outcome_is_unknown_is_never_tried_again(
    user, queue, settings, failing, django_capture_on_commit_callbacks
):
    use_failing(settings, ProviderTimeoutError, SEND_RETRIES=2)
    challenge = issue(user, django_capture_on_commit_callbacks)
    assert run(queue[0]) == "failed"
    assert len(queue) == 1 and failing.calls == 1
    assert Challenge.objects.get(pk=challenge.pk).status == ChallengeStatus.SEND_FAILED


def test_a_queue_that_refuses_the_task_sends_from_the_request(
    user, outbox, monkeypatch, django_capture_on_commit_callbacks
):
    from otp_auth import tasks

    class Broken:
        def using(self, **kwargs: Any) -> Any:
            raise ConnectionError("broker down")

    monkeypatch.setattr(tasks, "send_challenge", Broken())
    with otp_settings(**BACKGROUND):
        challenge = issue(user, django_capture_on_commit_callbacks)
    assert len(outbox) == 1
    assert Challenge.objects.get(pk=challenge.pk).send_state == "sent"


# Failover through real vendor fakes on loopback ------------------------------------------


@pytest.fixture
def vendors(settings: Any) -> Iterator[tuple[FakeTwilio, FakeArkesel]]:
    with FakeTwilio() as twilio, FakeArkesel() as arkesel:
        settings.OTP_AUTH = {
            **settings.OTP_AUTH,
            **BACKGROUND,
            "PROVIDERS": {
                "default": {
                    "BACKEND": "otp_auth.providers.routing.SMSProvider",
                    "OPTIONS": {"providers": ["twilio", "arkesel"]},
                },
                "twilio": {
                    "BACKEND": "otp_auth.providers.twilio.SMSProvider",
                    "OPTIONS": twilio_options(twilio, from_number="+15005550006"),
                    "CIRCUIT": {"FAILURES": 2, "WINDOW": 60, "COOL_OFF": 30},
                },
                "arkesel": {
                    "BACKEND": "otp_auth.providers.arkesel.SMSProvider",
                    "OPTIONS": arkesel_options(arkesel),
                },
                "email": {"BACKEND": "otp_auth.providers.email.EmailProvider"},
            },
        }
        get_provider.cache_clear()
        yield twilio, arkesel  # type: ignore[misc]
    get_provider.cache_clear()


def test_background_sending_fails_over_to_the_backup(
    user, queue, vendors, django_capture_on_commit_callbacks
):
    twilio, arkesel = vendors
    twilio.script(*[Reply(503, {"code": 20503, "message": "unavailable"})] * 3)
    sent = []
    for _ in range(3):
        user.otp_challenges.update(status="cancelled")
        challenge = issue(user, django_capture_on_commit_callbacks)
        assert run(queue[-1]) == "sent"
        sent.append(challenge)
    assert twilio.outgoing == [] and len(arkesel.sent) == 3
    # Twilio failed twice, then its circuit was open: the third login skipped it.
    outcomes = [
        list(
            DeliveryAttempt.objects.filter(challenge=c)
            .order_by("pk")
            .values_list("outcome", flat=True)
        )
        for c in sent
    ]
    assert outcomes == [["failed", "accepted"], ["failed", "accepted"], ["skipped", "accepted"]]
    assert len(twilio.requests) == 2
    last = Challenge.objects.get(pk=sent[-1].pk)
    assert last.provider_reference and last.send_state == "sent"
    code = code_in(arkesel.sent[-1].text)
    assert challenges.verify_challenge(last.public_id, code, purpose="login", user=user)


# The whole login through the Tasks framework (immediate backend) -------------------------


def test_the_login_works_the_same_through_the_tasks_framework(
    user, outbox, django_capture_on_commit_callbacks
):
    client = Client()
    with otp_settings(**BACKGROUND):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = password_step(client)
            assert response.status_code == 302
            page = client.get("/account/login/verify/")
        assert outbox == []
        assert 'data-state="sending"' in page.content.decode()
        assert "We are sending a code by" in page.content.decode()
        for callback in callbacks:
            callback()  # the commit: the immediate backend runs the task now
        assert len(outbox) == 1
        page = client.get("/account/login/verify/")
        assert 'data-state="sent"' in page.content.decode()
        response = client.post("/account/login/verify/", {"code": last_code()})
        assert response.status_code == 302
        assert client.get("/home/").status_code == 200
    assert re.search(r"\d{6}", outbox[0].text)


# System checks ---------------------------------------------------------------------------


def _background_checks(**settings_changes: Any) -> list[str]:
    from django.test import override_settings

    from otp_auth.checks import check_background_sending

    with override_settings(**settings_changes), otp_settings(**BACKGROUND):
        return [message.id for message in check_background_sending()]  # type: ignore[misc]


def test_e080_an_unknown_task_backend() -> None:
    assert _background_checks(TASKS={"other": {"BACKEND": "x.DatabaseBackend"}}) == [
        "otp_auth.E080"
    ]


def test_e080_no_tasks_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert _background_checks() == ["otp_auth.E080"]


@pytest.mark.parametrize("backend", ["ImmediateBackend", "DummyBackend"])
def test_w080_a_backend_without_a_worker(backend: str) -> None:
    tasks = {"default": {"BACKEND": f"django_tasks.backends.x.{backend}"}}
    assert _background_checks(TASKS=tasks) == ["otp_auth.W080"]


def test_a_backend_with_a_worker_passes() -> None:
    tasks = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    assert _background_checks(TASKS=tasks) == []
