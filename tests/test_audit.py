"""The audit log (R39, R83-R88, R92, R93): one row and one signal per event, masked and
secret-free, read-only in the admin behind the second factor, and purged by retention."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from otp_auth.constants import Purpose
from otp_auth.exceptions import ChallengeLockedError, DeliveryError, InvalidCodeError
from otp_auth.models import AuditEvent, Challenge, DeliveryAttempt, Device
from otp_auth.providers import locmem
from otp_auth.providers.http import StatusUpdate
from otp_auth.services import (
    cancel_challenge,
    delivery,
    issue_challenge,
    remove_device,
    resend_challenge,
    verify_challenge,
)
from otp_auth.services.audit import log
from otp_auth.signals import audit_event
from tests.conftest import PASSWORD, last_code, login_fully, otp_settings, password_step, wrong_code

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/otp_auth/auditevent/"
UA = "Mozilla/5.0 (Test)"


@pytest.fixture
def signalled() -> Iterator[list[AuditEvent]]:
    rows: list[AuditEvent] = []

    def receiver(sender: Any, *, event: AuditEvent, **kwargs: Any) -> None:
        rows.append(event)

    audit_event.connect(receiver)
    yield rows
    audit_event.disconnect(receiver)


@pytest.fixture
def request_() -> Any:
    return RequestFactory().post("/", REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT=UA)


def issue(user: Any, **kwargs: Any) -> tuple[Challenge, str]:
    challenge = issue_challenge(
        user=user, device=user.otp_devices.get(), purpose=Purpose.LOGIN, **kwargs
    )
    return challenge, last_code()


def kinds(**filters: Any) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("pk").values_list("kind", flat=True))


# R39, R83: one row per event, with who, what, where and from where -----------------------


def test_a_login_writes_sent_and_verified(
    user: Any, request_: Any, signalled: list[AuditEvent]
) -> None:
    challenge, code = issue(user, request=request_)
    verify_challenge(challenge.public_id, code, purpose=Purpose.LOGIN, request=request_)
    rows = list(AuditEvent.objects.filter(challenge_pk=challenge.pk).order_by("pk"))
    assert [(r.kind, r.outcome) for r in rows] == [
        ("code_sent", "success"),
        ("verified", "success"),
    ]
    for row in rows:
        assert row.user == user
        assert (row.purpose, row.channel) == ("login", "sms")
        assert row.destination == "\u2022\u2022\u2022\u20224567"
        assert (row.ip_address, row.user_agent) == ("203.0.113.5", UA)
        assert row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == timedelta(0)
        assert abs(row.created_at - timezone.now()) < timedelta(minutes=1)
    assert [e.pk for e in signalled if e.challenge_pk == challenge.pk] == [r.pk for r in rows]


def test_refused_locked_expired_and_cancelled_each_leave_one_row(clock: Any, user: Any) -> None:
    challenge, code = issue(user)
    for _ in range(4):
        with pytest.raises(InvalidCodeError):
            verify_challenge(challenge.public_id, wrong_code(code), purpose="login")
    with pytest.raises(ChallengeLockedError):
        verify_challenge(challenge.public_id, wrong_code(code), purpose="login")
    assert kinds(challenge_pk=challenge.pk) == [
        "code_sent",
        *["failed"] * 5,
        "challenge_locked",
    ]
    reasons = AuditEvent.objects.filter(kind="failed").order_by("pk")
    assert list(reasons.values_list("reason", flat=True)) == ["wrong"] * 4 + ["challenge_locked"]

    expiring, code = issue(user)
    clock.shift(601)
    with pytest.raises(InvalidCodeError):
        verify_challenge(expiring.public_id, code, purpose="login")
    assert kinds(challenge_pk=expiring.pk)[-1] == "expired"

    cancelled, _ = issue(user)
    assert cancel_challenge(cancelled.public_id, user=user)
    assert not cancel_challenge(cancelled.public_id, user=user)
    assert kinds(challenge_pk=cancelled.pk) == ["code_sent", "cancelled"]


def test_unknown_challenges_are_logged_without_a_challenge(user: Any, request_: Any) -> None:
    with pytest.raises(InvalidCodeError):
        verify_challenge("x" * 43, "123456", purpose="login", request=request_)
    row = AuditEvent.objects.get(kind="failed")
    assert (row.user, row.challenge_pk, row.reason, row.ip_address) == (
        None,
        None,
        "unknown",
        "203.0.113.5",
    )


def test_failed_sends_and_resends_are_logged(clock: Any, user: Any) -> None:
    locmem.fail_next()
    with pytest.raises(DeliveryError):
        issue(user)
    failed = Challenge.objects.get()
    assert kinds(challenge_pk=failed.pk) == ["send_failed"]
    assert AuditEvent.objects.get(kind="send_failed").reason == "provider_error"

    challenge, _ = issue(user)
    clock.shift(61)
    resend_challenge(challenge.public_id, user=user)
    row = AuditEvent.objects.filter(challenge_pk=challenge.pk).order_by("pk").last()
    assert (row.kind, row.reason) == ("code_sent", "resend")


def test_one_accepted_send_is_recorded_on_the_challenge(user: Any) -> None:
    """A provider without status callbacks, one attempt, accepted: the challenge row says
    it all (alias, reference, status), and no attempt row is written."""
    challenge, _ = issue(user)
    challenge.refresh_from_db()
    assert not DeliveryAttempt.objects.filter(challenge=challenge).exists()
    assert challenge.provider_alias == "default"
    assert challenge.provider_reference and challenge.delivery_status
    assert kinds(challenge_pk=challenge.pk) == ["code_sent"]


def test_delivery_reports_are_logged(user: Any) -> None:
    challenge, _ = issue(user)
    # The row a status callback is matched against (written for vendors with callbacks).
    attempt = DeliveryAttempt.objects.create(
        challenge=challenge,
        provider_alias=challenge.provider_alias,
        provider_name="locmem",
        outcome=DeliveryAttempt.ACCEPTED,
        reference=challenge.provider_reference,
        status=challenge.delivery_status,
    )
    delivery.record_status(attempt.provider_alias, StatusUpdate(attempt.reference, "delivered"))
    assert kinds(challenge_pk=challenge.pk)[-1] == "delivered"


def test_devices_added_and_removed_are_logged(make_user: Any) -> None:
    user = make_user()
    device = user.otp_devices.get()
    unconfirmed = Device.objects.create(user=user, email="x@mail.example", channels=["email"])
    unconfirmed.delete()  # never a factor: nothing to log
    remove_device(user, device.pk)
    rows = list(AuditEvent.objects.filter(user=user).order_by("pk"))
    assert [(r.kind, r.destination) for r in rows] == [
        ("factor_added", "\u2022\u2022\u2022\u20224567"),
        ("factor_removed", "\u2022\u2022\u2022\u20224567"),
    ]


def test_deleting_a_user_keeps_their_audit_rows(make_user: Any) -> None:
    user = make_user()
    issue(user)
    user.delete()  # the device goes with the user: no row that points at a deleted user
    assert AuditEvent.objects.filter(user__isnull=True).count() == 2  # added, sent
    assert not AuditEvent.objects.filter(kind="factor_removed").exists()


def test_sites_can_log_their_own_events(user: Any, request_: Any) -> None:
    row = log(AuditEvent.Kind.RESET_REQUESTED, user=user, request=request_, channel="email")
    assert (row.kind, row.outcome, row.user, row.ip_address) == (
        "reset_requested",
        "info",
        user,
        "203.0.113.5",
    )


# R84, R87, R93: nothing secret, everything masked and cleaned -----------------------------


def test_rows_never_hold_a_code_a_hash_or_a_full_destination(clock: Any, user: Any) -> None:
    challenge, code = issue(user)
    code_hash = Challenge.objects.get(pk=challenge.pk).code_hash
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, wrong_code(code), purpose="login")
    verify_challenge(challenge.public_id, code, purpose="login")
    dump = " ".join(str(v) for row in AuditEvent.objects.values() for v in row.values())
    for secret in (code, wrong_code(code), code_hash, challenge.public_id, "+233241234567"):
        assert secret not in dump
    assert "241234567" not in dump


def test_control_characters_and_markup_are_cleaned_or_escaped(make_user: Any) -> None:
    make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    user = make_user()
    hostile = "Evil\r\nX-Injected: 1\t<script>alert(1)</script>"
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT=hostile)
    issue(user, request=request)
    row = AuditEvent.objects.get(kind="code_sent")
    assert "\r" not in row.user_agent and "\n" not in row.user_agent
    assert row.user_agent == "EvilX-Injected: 1<script>alert(1)</script>"
    client = Client()
    login_fully(client, "root")
    page = client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# R85, R86: the admin --------------------------------------------------------------------


@pytest.fixture
def admin_client(make_user: Any) -> Client:
    make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    login_fully(client, "root")
    return client


def test_the_audit_admin_lists_filters_and_never_shows_codes(
    admin_client: Client, user: Any
) -> None:
    challenge, code = issue(user)
    with pytest.raises(InvalidCodeError):
        verify_challenge(challenge.public_id, wrong_code(code), purpose="login")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert [spec.title for spec in response.context["cl"].filter_specs] == [
        "event",
        "outcome",
        "purpose",
        "channel",
        "time",
    ]
    assert response.context["cl"].date_hierarchy == "created_at"
    assert "Code refused" in html
    assert "+233241234567" not in html
    for secret in (code, wrong_code(code)):
        assert not re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", html)
    refused = admin_client.get(CHANGELIST, {"kind__exact": "failed"})
    assert refused.context["cl"].result_count == 1
    by_user = admin_client.get(CHANGELIST, {"q": "alice"})
    assert by_user.context["cl"].result_count == 3  # factor added, sent, refused


def test_the_audit_admin_is_read_only_even_in_bulk(admin_client: Client, user: Any) -> None:
    issue(user)
    row = AuditEvent.objects.filter(user=user).first()
    assert row is not None
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    admin_client.post(f"{CHANGELIST}{row.pk}/change/", {"kind": "verified"})
    assert admin_client.get(f"{CHANGELIST}{row.pk}/delete/").status_code == 403
    admin_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"})
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'name="action"' not in html
    admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )
    row.refresh_from_db()
    assert row.kind != "verified"
    assert AuditEvent.objects.filter(user=user).count() == 2  # factor added, code sent
    page = admin_client.get(f"{CHANGELIST}{row.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def test_the_audit_admin_needs_a_verified_staff_session(make_user: Any) -> None:
    root = make_user("root", phone="+233501234567", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)  # password only
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/verify/")
    make_user("clerk", phone="+233551234567", is_staff=True)
    clerk = Client()
    login_fully(clerk, "clerk")
    assert clerk.get(CHANGELIST).status_code == 403


def test_staff_cannot_set_device_secrets_or_destinations(admin_client: Client, user: Any) -> None:
    device = user.otp_devices.get()
    admin_client.post(
        f"/admin/otp_auth/device/{device.pk}/change/", {"phone_number": "+233200000000"}
    )
    device.refresh_from_db()
    assert device.phone_number == "+233241234567"


# R88: retention ---------------------------------------------------------------------------


def _aged(days: float, **fields: Any) -> AuditEvent:
    return AuditEvent.objects.create(
        kind="failed",
        outcome="failure",
        created_at=timezone.now() - timedelta(days=days),
        **fields,
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("otp_auth_cleanup", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_cleanup_deletes_audit_rows_past_the_retention_setting(user: Any) -> None:
    old = [_aged(366, user=user) for _ in range(3)]
    kept = _aged(364, user=user)
    out = run()
    assert "Deleted 3 audit event(s) older than 365 days." in out
    assert not AuditEvent.objects.filter(pk__in=[o.pk for o in old]).exists()
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    with otp_settings(AUDIT_RETENTION_DAYS=30):
        assert "Deleted 1 audit event(s) older than 30 days." in run()


def test_cleanup_works_in_batches_and_keeps_audit_rows_of_deleted_challenges(user: Any) -> None:
    for _ in range(7):
        _aged(400)
    challenge, _ = issue(user)
    Challenge.objects.filter(pk=challenge.pk).update(created_at=timezone.now() - timedelta(60))
    out = run("--batch-size", "3", "--audit-days", "90", "-v", "2")
    assert "Deleted 7 audit event(s) older than 90 days.\n  in 3 batch(es)" in out
    assert "Deleted 1 challenge(s) older than 30 days." in out
    assert not Challenge.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert kinds(challenge_pk=challenge.pk) == ["code_sent"]


def test_cleanup_dry_run_and_bad_arguments(user: Any) -> None:
    _aged(500)
    assert run("--dry-run").splitlines() == [
        "0 challenge(s) older than 30 days.",
        "1 audit event(s) older than 365 days.",
        "0 password reset(s) older than 30 days.",
    ]
    assert AuditEvent.objects.filter(kind="failed").count() == 1
    for args in (["--audit-days", "0"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            call_command("otp_auth_cleanup", *args, stdout=StringIO(), stderr=StringIO())


# R92: codes never reach the logs, whatever the limits and locks do --------------------------


def test_no_code_or_password_in_any_log_record(
    clock: Any, client: Client, user: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    codes: list[str] = []
    with otp_settings(VERIFY_DELAY_MAX=0, RATE_LIMITS={"send_budget": "2/d"}):
        for _ in range(2):
            password_step(client)
            codes.append(last_code())
            for _ in range(5):
                client.post("/account/login/verify/", {"code": wrong_code(codes[-1])})
        password_step(Client())  # refused: locked, and over the budget
    assert AuditEvent.objects.filter(kind="account_locked").exists()
    text = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, 'request', '')}" for r in caplog.records
    )
    for secret in [*codes, *(wrong_code(c) for c in codes), PASSWORD]:
        assert secret not in text
