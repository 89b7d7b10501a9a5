"""Locust users for ``python -m benchmarks.load``: full sign-ins against two app instances.

``LOAD_MODE=otp``: password, the code the fake vendor received (read from the mailbox,
as a user reads their phone), the code, then two pages that need a verified session.
``LOAD_MODE=plain``: Django's own password login and two pages, the baseline.

Each flow is one line of JSON in ``LOAD_LOG`` (start, seconds, ok, error). A request that
finds its instance down (connection refused) is sent once more to the other instance, as
a load balancer would: sessions live in the shared database, so a flow carries on.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from typing import Any

import requests
from locust import HttpUser, constant, task

HOSTS = os.environ.get("LOAD_HOSTS", "http://127.0.0.1:8101").split(",")
MAILBOX = os.environ.get("LOAD_MAILBOX", "")
MODE = os.environ.get("LOAD_MODE", "otp")
ACCOUNTS = int(os.environ.get("LOAD_ACCOUNTS", "1000"))
PASSWORD = os.environ.get("LOAD_PASSWORD", "")
LOG_PATH = os.environ.get("LOAD_LOG", "load-flows.jsonl")

_counter = itertools.count(int(os.environ.get("LOAD_FIRST_ACCOUNT", "0")))
_lock = threading.Lock()
_down: dict[str, float] = {}
_log = open(LOG_PATH, "a", buffering=1)  # noqa: SIM115 - kept open for the whole run


def account_number(i: int) -> str:
    return f"+23324{i % ACCOUNTS:07d}"


class FlowError(Exception):
    pass


class SignIn(HttpUser):
    wait_time = constant(0)
    host = HOSTS[0]

    def _host(self, preferred: int) -> str:
        now = time.monotonic()
        for offset in range(len(HOSTS)):
            host = HOSTS[(preferred + offset) % len(HOSTS)]
            if _down.get(host, 0) <= now:
                return host
        return HOSTS[preferred % len(HOSTS)]

    def _request(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        for attempt in range(2):
            host = self._host(self.preferred + attempt)
            response = self.client.request(
                method, host + path, name=name, allow_redirects=False, timeout=30, **kwargs
            )
            if response.status_code != 0:
                return response
            _down[host] = time.monotonic() + 30  # connection refused: instance down
        return response

    def _csrf(self) -> str:
        return str(self.client.cookies.get("csrftoken", ""))

    @task
    def flow(self) -> None:
        with _lock:
            i = next(_counter)
        self.preferred = i % len(HOSTS)
        self.client.cookies.clear()
        started, error = time.time(), ""
        try:
            if MODE == "plain":
                self.plain(i)
            else:
                self.otp(i)
        except FlowError as exc:
            error = str(exc)
        _log.write(
            json.dumps({"t": started, "s": time.time() - started, "ok": not error, "error": error})
            + "\n"
        )

    def expect(self, response: Any, status: int, step: str, where: str = "") -> None:
        if response.status_code != status:
            raise FlowError(f"{step}:{response.status_code}")
        if where and where not in response.headers.get("Location", ""):
            raise FlowError(f"{step}:{response.headers.get('Location', '')[:40]}")

    def plain(self, i: int) -> None:
        self.expect(self._request("GET", "/plain/login/", "plain: form"), 200, "form")
        data = {"username": f"load{i % ACCOUNTS}", "password": PASSWORD}
        answer = self._request(
            "POST",
            "/plain/login/",
            "plain: password",
            data={**data, "csrfmiddlewaretoken": self._csrf()},
        )
        self.expect(answer, 302, "password", "/plain/home/")
        for _ in range(2):
            self.expect(self._request("GET", "/plain/home/", "plain: page"), 200, "page")

    def otp(self, i: int) -> None:
        self.expect(self._request("GET", "/account/login/", "otp: form"), 200, "form")
        data = {"username": f"load{i % ACCOUNTS}", "password": PASSWORD}
        answer = self._request(
            "POST",
            "/account/login/",
            "otp: password",
            data={**data, "csrfmiddlewaretoken": self._csrf()},
        )
        self.expect(answer, 302, "password", "/verify/")
        code = self.read_code(account_number(i))
        answer = self._request(
            "POST",
            "/account/login/verify/",
            "otp: code",
            data={"code": code, "csrfmiddlewaretoken": self._csrf()},
        )
        if answer.status_code == 302 and "/verify/" in answer.headers.get("Location", ""):
            raise FlowError("code:refused")
        self.expect(answer, 302, "code")
        for _ in range(2):
            self.expect(self._request("GET", "/protected/", "otp: verified page"), 200, "page")

    def read_code(self, number: str) -> str:
        """The newest code the fake vendors delivered to ``number`` (the user's phone)."""
        for _ in range(20):
            reply = requests.get(MAILBOX, params={"to": number}, timeout=5)
            match = re.search(r"\b(\d{6})\b", reply.text)
            if match:
                return match.group(1)
            time.sleep(0.1)
        raise FlowError("code:not_delivered")
