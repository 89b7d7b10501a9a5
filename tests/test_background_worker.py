"""Background sending with a real worker process: the demo under ``runserver`` enqueues
into django-tasks-db's queue, ``manage.py db_worker`` (another process) sends through the
vendor fakes on loopback, and the two share one SQLite file and one file cache.

What the unit tests in ``test_background_send.py`` prove with a stand-in queue is proven
here across processes: the login completes through the worker, a redelivered task sends
nothing, a task whose challenge was cancelled before it ran sends nothing, and the worker
fails over to the backup vendor.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.fakes import FakeArkesel, FakeTwilio
from tests.fakes.server import Reply
from tests.test_e2e_browser import ROOT, _free_port

pytest.importorskip("django_tasks_db", reason="django-tasks-db is not installed")

pytestmark = pytest.mark.worker

USERNAME, PASSWORD = "demo", "demo-password-2fa"  # demo_project's demo_seed
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Site:
    """The demo and a db_worker, with Twilio then Arkesel as its SMS vendors."""

    def __init__(self, tmp: Path, twilio: FakeTwilio, arkesel: FakeArkesel) -> None:
        self.db = tmp / "site.sqlite3"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.twilio, self.arkesel = twilio, arkesel
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo_project.settings",
            "DATABASE_URL": f"sqlite:///{self.db}",
            # Shared by both processes: circuit-breaker health and limits.
            "CACHE_URL": f"filecache://{tmp / 'cache'}",
            "DEBUG": "True",
            "OTP_PROVIDER": "failover",
            "OTP_SEND_IN_BACKGROUND": "True",
            "OTP_REQUIRE_ENROLLMENT": "False",
            "OTP_TRUSTED_BROWSERS": "False",
            "OTP_HTTP_READ_TIMEOUT": "2",
            "OTP_RATE_LIMITS": json.dumps(
                {"send_per_destination": "100/h", "send_per_user": "100/h"}
            ),
            "TWILIO_BASE_URL": twilio.url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "ARKESEL_BASE_URL": arkesel.url,
            "ARKESEL_API_KEY": arkesel.api_key,
            "PYTHONUNBUFFERED": "1",
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = tmp / "worker.log"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("demo_seed")
        self.server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("runserver", self._answers)
        self.start_worker()

    def _answers(self) -> bool:
        try:
            requests.get(f"{self.url}/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    def start_worker(self) -> None:
        with self.log.open("ab") as log:
            self.worker = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "db_worker",
                    "--interval",
                    "0.1",
                    "--no-reload",
                    "--no-startup-delay",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=20)
            self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=20)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=20) as db:
            return db.execute(sql, params).fetchall()

    def task_results(self) -> list[tuple[str, Any, Any]]:
        rows = self.query(
            "SELECT status, args_kwargs, return_value FROM django_tasks_database_dbtaskresult "
            "ORDER BY enqueued_at"
        )
        return [(s, json.loads(a), json.loads(r) if r else None) for s, a, r in rows]

    def sent_count(self) -> int:
        return len(self.twilio.outgoing) + len(self.arkesel.sent)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with FakeTwilio() as twilio, FakeArkesel() as arkesel:
        site = Site(Path(tmp_path_factory.mktemp("worker")), twilio, arkesel)  # type: ignore[arg-type]
        site.start()
        try:
            yield site
        finally:
            site.stop()


def _token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


def password_step(site: Site) -> requests.Session:
    session = requests.Session()
    login = f"{site.url}/account/login/"
    answer = session.post(
        login,
        {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": _token(session, login)},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302 and "/verify/" in answer.headers["Location"], answer.text
    return session


def code_page(site: Site, session: requests.Session) -> str:
    return session.get(f"{site.url}/account/login/verify/", timeout=30).text


def submit(site: Site, session: requests.Session, code: str) -> requests.Response:
    verify = f"{site.url}/account/login/verify/"
    return session.post(
        verify,
        {"code": code, "csrfmiddlewaretoken": _token(session, verify)},
        allow_redirects=False,
        timeout=30,
    )


def last_twilio_code(site: Site) -> str:
    match = re.search(r"\b(\d{6})\b", site.twilio.outgoing[-1].params["Body"])
    assert match
    return match.group(1)


def test_the_worker_sends_and_the_login_completes(site: Site) -> None:
    before = len(site.twilio.outgoing)
    session = password_step(site)
    page = code_page(site, session)
    # Queued or already done: the same page, with the send's state.
    assert re.search(r'data-state="(sending|sent)"', page)
    wait_for("the code page to say sent", lambda: 'data-state="sent"' in code_page(site, session))
    assert len(site.twilio.outgoing) == before + 1
    answer = submit(site, session, last_twilio_code(site))
    assert answer.status_code == 302, answer.text[:300]
    assert "/verify/" not in answer.headers["Location"]
    status, args, value = site.task_results()[-1]
    assert (status, value) == ("SUCCESSFUL", "sent")
    # The queue holds the challenge, its ticket and the epoch: never the code.
    assert set(args["kwargs"]) == {"challenge", "ticket", "epoch", "first", "attempt"}
    assert last_twilio_code(site) not in json.dumps(args)


def test_a_redelivered_task_sends_nothing_again(site: Site) -> None:
    session = password_step(site)
    wait_for("the send", lambda: 'data-state="sent"' in code_page(site, session))
    sent = site.sent_count()
    _, args, _ = site.task_results()[-1]
    # The same task, enqueued again into the real queue (a broker's redelivery).
    site.manage(
        "shell",
        "-c",
        f"from otp_auth.tasks import send_challenge; send_challenge.enqueue(**{args['kwargs']!r})",
    )
    status, again, value = wait_for(
        "the redelivered task",
        lambda: next(
            (r for r in site.task_results()[-1:] if r[0] == "SUCCESSFUL" and r[1] == args), None
        ),
    )
    assert value == "done"
    assert site.sent_count() == sent
    assert submit(site, session, last_twilio_code(site)).status_code == 302


def test_a_task_for_a_cancelled_challenge_sends_nothing(site: Site) -> None:
    site.stop_worker()
    try:
        sent = site.sent_count()
        session = password_step(site)
        assert 'data-state="sending"' in code_page(site, session)
        cancel = f"{site.url}/account/login/cancel/"
        session.post(
            cancel,
            {"csrfmiddlewaretoken": _token(session, f"{site.url}/account/login/verify/")},
            timeout=30,
        )
        [(state, status)] = site.query(
            "SELECT send_state, status FROM otp_auth_challenge ORDER BY id DESC LIMIT 1"
        )
        assert (state, status) == ("queued", "cancelled")
    finally:
        site.start_worker()
    status, _, value = wait_for(
        "the task to run",
        lambda: next((r for r in site.task_results()[-1:] if r[0] == "SUCCESSFUL"), None),
    )
    assert value == "dropped"
    time.sleep(0.5)
    assert site.sent_count() == sent
    [(state, status)] = site.query(
        "SELECT send_state, status FROM otp_auth_challenge ORDER BY id DESC LIMIT 1"
    )
    assert (state, status) == ("dropped", "cancelled")


def test_the_worker_fails_over_to_the_backup_vendor(site: Site) -> None:
    twilio_before, arkesel_before = len(site.twilio.outgoing), len(site.arkesel.sent)
    site.twilio.script(Reply(503, {"code": 20503, "message": "Service unavailable", "status": 503}))
    session = password_step(site)
    wait_for("the send", lambda: 'data-state="sent"' in code_page(site, session))
    assert len(site.twilio.outgoing) == twilio_before
    assert len(site.arkesel.sent) == arkesel_before + 1
    rows = site.query(
        "SELECT provider_alias, outcome FROM otp_auth_deliveryattempt WHERE challenge_id = "
        "(SELECT MAX(id) FROM otp_auth_challenge) ORDER BY id"
    )
    assert rows == [("twilio", "failed"), ("arkesel", "accepted")]
    code = re.search(r"\b(\d{6})\b", site.arkesel.sent[-1].text)
    assert code
    assert submit(site, session, code.group(1)).status_code == 302
