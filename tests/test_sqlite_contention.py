"""The demo on a SQLite file under 20 parallel sign-ins never answers 500.

SQLite allows one writer at a time. The demo's settings start every transaction with
the write lock (``IMMEDIATE``), wait for it (``timeout``) and use WAL; what contention is
left answers 503 with ``Retry-After`` (``otp_auth.http_guard``), never 500.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.test_e2e_browser import DemoServer

THREADS = 20
PASSWORD = "contention-password-42"
SEED = f"""
from django.contrib.auth import get_user_model
from otp_auth.models import Device
User = get_user_model()
for i in range({THREADS}):
    user = User.objects.create_user(f"load{{i}}", password="{PASSWORD}")
    Device.objects.create(user=user, phone_number=f"+2332412{{i:05d}}", channels=["sms"],
                          confirmed=True)
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = DemoServer(Path(tmp_path_factory.mktemp("sqlite_contention")))
    server.manage("migrate", "--noinput")
    server.manage("shell", "-c", SEED)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


def test_twenty_parallel_code_submissions_never_get_a_500(demo: DemoServer) -> None:
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    ready = threading.Barrier(THREADS)

    def sign_in(i: int) -> None:
        try:
            session = requests.Session()
            login = f"{demo.url}/account/login/"
            data = {"username": f"load{i}", "password": PASSWORD}
            step = session.post(
                login,
                {**data, "csrfmiddlewaretoken": _token(session, login)},
                allow_redirects=False,
                timeout=60,
            )
            verify = f"{demo.url}/account/login/verify/"
            token = _token(session, verify)
            ready.wait(timeout=120)
            answers = [step.status_code]
            for _ in range(3):  # three wrong codes each, all at once
                answer = session.post(
                    verify,
                    {"code": "000000", "csrfmiddlewaretoken": token},
                    allow_redirects=False,
                    timeout=60,
                )
                answers.append(answer.status_code)
            with lock:
                statuses.extend(answers)
        except BaseException as exc:  # reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    assert len(statuses) == THREADS * 4
    assert 500 not in statuses, (statuses, demo.output[-3000:])
    assert set(statuses) <= {200, 302, 503}
