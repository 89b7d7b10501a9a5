"""``python -m benchmarks.load`` (``make load``): a real multi-instance load test.

Two gunicorn instances of ``demo_project`` share one PostgreSQL database (a dedicated one,
``otp_auth_load``, recreated each run) and one Redis (a dedicated ``redis-server`` on port
6390, so that it can be restarted without touching anyone else's). SMS goes through
routing to a fake Twilio, then a fake Arkesel (``tests/fakes``, on loopback, in this
process). Locust, headless, runs full sign-ins against both instances.

Phases: plain Django password logins (the baseline), two-factor logins, a limit probe
(one account asks for codes from both instances at once), then two-factor logins while
faults are injected: Twilio answers 503, recovers, then hangs; Redis is killed and
restarted; one instance is killed. Afterwards the vendors' records and the database are
compared: every message a vendor took is on record exactly once, no challenge was sent
twice or lost, and the probe got exactly the limit. Every address is 127.0.0.1; every
phase is bounded in time; the whole run takes about three minutes.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and ``redis-server`` on the PATH;
installs nothing (``make load`` installs the ``load`` dependency group first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeArkesel, FakeTwilio  # noqa: E402
from tests.fakes.server import FakeServer, Recorded, Reply  # noqa: E402

PASSWORD = "load-test-password-42"
DB_NAME = "otp_auth_load"
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_PORT = 6390
PORTS = (8101, 8102)
ACCOUNTS = 3000
PROBE = "probe"
PROBE_NUMBER = "+233209999999"
PROBE_REQUESTS = 24
#: send_per_destination's default hourly count: the probe must get exactly this many.
PROBE_LIMIT = 5
READ_TIMEOUT = 2.0
CIRCUIT = {"FAILURES": 3, "WINDOW": 30, "COOL_OFF": 8}
#: Site-wide and per-address budgets sized for thousands of sign-ins from 127.0.0.1;
#: the per-user and per-destination limits keep their defaults.
RATE_LIMITS = {
    "send_per_ip": "100000/h",
    "send_per_calling_code": "100000/h",
    "send_budget": "100000/h",
    "password_failures_per_ip": "100000/h",
    "verify_failures_per_ip": "100000/h",
}

SEED = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from otp_auth.models import Device
User = get_user_model()
hashed = make_password({PASSWORD!r})
users = User.objects.bulk_create(
    [User(username=f"load{{i}}", password=hashed) for i in range({ACCOUNTS})]
    + [User(username={PROBE!r}, password=hashed)]
)
Device.objects.bulk_create(
    [Device(user=u, phone_number=f"+23324{{i:07d}}", channels=["sms"], confirmed=True)
     for i, u in enumerate(users[:-1])]
    + [Device(user=users[-1], phone_number={PROBE_NUMBER!r}, channels=["sms"], confirmed=True)]
)
"""


class Twilio(FakeTwilio):
    """The fake Twilio with a switch: ``mode`` is ``ok``, ``503`` or ``hang``."""

    mode = "ok"

    def dispatch(self, recorded: Recorded) -> Reply:
        if self.mode == "503":
            with self._lock:
                self.requests.append(recorded)
            return Reply(503, {"code": 20503, "message": "Service unavailable", "status": 503})
        self.hang = self.mode == "hang"
        return super().dispatch(recorded)


class Mailbox(FakeServer):
    """``GET /?to=NUMBER``: the oldest unread message either vendor delivered there."""

    def __init__(self, twilio: Twilio, arkesel: FakeArkesel) -> None:
        super().__init__()
        self.twilio, self.arkesel = twilio, arkesel
        self.read: dict[str, int] = defaultdict(int)

    def dispatch(self, recorded: Recorded) -> Reply:
        # Twilio is given "+233...", Arkesel "233...": compare the digits.
        number = (recorded.query.get("to") or [""])[0].replace(" ", "").lstrip("+")
        texts = [
            o.params.get("Body", "")
            for o in list(self.twilio.outgoing)
            if o.to.lstrip("+") == number
        ]
        texts += [s.text for s in list(self.arkesel.sent) if s.recipient.lstrip("+") == number]
        # Both lists only grow, in order; a message is read once.
        with self._lock:
            index = self.read[number]
            if index >= len(texts):
                return Reply(404, body="")
            self.read[number] = index + 1
        return Reply(200, body=texts[index])


def free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_until(what: str, probe: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise SystemExit(f"load: timed out waiting for {what}")


class Stack:
    def __init__(self, work: Path, twilio: Twilio, arkesel: FakeArkesel) -> None:
        self.work = work
        self.redis: subprocess.Popen[bytes] | None = None
        self.apps: dict[int, subprocess.Popen[bytes]] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "DATABASE"))},
            "DJANGO_SETTINGS_MODULE": "demo_project.settings",
            "DEBUG": "False",
            "SECRET_KEY": "load-test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"{PG}/{DB_NAME}",
            "CACHE_URL": f"rediscache://127.0.0.1:{REDIS_PORT}/0",
            "OTP_PROVIDER": "failover",
            "OTP_CIRCUIT": json.dumps(CIRCUIT),
            "OTP_HTTP_CONNECT_TIMEOUT": "1",
            "OTP_HTTP_READ_TIMEOUT": str(READ_TIMEOUT),
            "OTP_RATE_LIMITS": json.dumps(RATE_LIMITS),
            "OTP_TRUSTED_BROWSERS": "False",
            "DEMO_PLAIN_LOGIN": "True",
            "COOKIE_SECURE": "False",  # plain HTTP on loopback
            "TWILIO_BASE_URL": twilio.url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "ARKESEL_BASE_URL": arkesel.url,
            "ARKESEL_API_KEY": arkesel.api_key,
            "PYTHONUNBUFFERED": "1",
        }

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.work)],
            stdout=subprocess.DEVNULL,
        )
        wait_until("redis", lambda: not free(REDIS_PORT))

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def database(self) -> None:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            db.execute(f'CREATE DATABASE "{DB_NAME}"')
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("shell", "-c", SEED)

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=300
        )

    def start_app(self, port: int) -> None:
        log = (self.work / f"app-{port}.log").open("ab")
        self.apps[port] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "demo_project.wsgi:application"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed with its workers
        )
        wait_until(f"gunicorn on {port}", lambda: not free(port))

    def kill_app(self, port: int) -> None:
        process = self.apps.pop(port)
        os.killpg(process.pid, signal.SIGKILL)  # the arbiter and its workers, at once
        process.wait()
        wait_until(f"port {port} to close", lambda: free(port))

    def stop(self) -> None:
        for port in list(self.apps):
            process = self.apps.pop(port)
            process.terminate()
            process.wait(timeout=30)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(f"{PG}/{DB_NAME}") as db:
            return db.execute(sql).fetchall()


def locust(
    work: Path, mode: str, seconds: int, users: int, first_account: int, name: str
) -> list[dict[str, Any]]:
    log = work / f"{name}.jsonl"
    env = {
        **os.environ,
        "LOAD_HOSTS": ",".join(f"http://127.0.0.1:{p}" for p in PORTS),
        "LOAD_MAILBOX": os.environ["LOAD_MAILBOX"],
        "LOAD_MODE": mode,
        "LOAD_ACCOUNTS": str(ACCOUNTS),
        "LOAD_PASSWORD": PASSWORD,
        "LOAD_LOG": str(log),
        "LOAD_FIRST_ACCOUNT": str(first_account),
    }
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "benchmarks" / "locustfile.py")]
        + ["--headless", "--users", str(users), "--spawn-rate", str(users)]
        + ["--run-time", f"{seconds}s", "--stop-timeout", "10", "--only-summary"]
        + ["--loglevel", "WARNING", "--exit-code-on-error", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=seconds + 60,
        stdout=(work / f"{name}.locust.txt").open("w"),
        stderr=subprocess.STDOUT,
    )
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def summary(flows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ok = [f["s"] for f in flows if f["ok"]]
    errors: dict[str, int] = defaultdict(int)
    for f in flows:
        if not f["ok"]:
            errors[f["error"]] += 1

    def pct(p: float) -> float:
        if len(ok) < 2:
            return ok[0] * 1000 if ok else 0.0
        return statistics.quantiles(ok, n=100, method="inclusive")[int(p) - 1] * 1000

    return {
        "flows": len(flows),
        "ok": len(ok),
        "flows_s": len(ok) / seconds if seconds else 0.0,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": max(ok) * 1000 if ok else 0.0,
        "errors": dict(errors),
    }


def window(flows: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [f for f in flows if start <= f["t"] < end]


def probe_limit(stack: Stack) -> tuple[int, int]:
    """Password steps for one account, from both instances at once: how many went through."""
    import requests

    answers: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        session = requests.Session()
        base = f"http://127.0.0.1:{PORTS[i % 2]}"
        session.get(f"{base}/account/login/", timeout=30)
        answer = session.post(
            f"{base}/account/login/",
            {
                "username": PROBE,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            },
            allow_redirects=False,
            timeout=30,
        )
        ok = answer.status_code == 302 and "/verify/" in answer.headers.get("Location", "")
        with lock:
            answers.append(int(ok))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(PROBE_REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sum(answers), len(answers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users (8)")
    parser.add_argument("--seconds", type=int, default=20, help="each baseline phase (20)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    for port in (REDIS_PORT, *PORTS):
        if not free(port):
            raise SystemExit(f"load: port {port} on 127.0.0.1 is in use")
    if shutil.which("redis-server") is None:
        raise SystemExit("load: redis-server is not installed")

    work = Path(tempfile.mkdtemp(prefix="otp_auth_load_"))
    twilio, arkesel = Twilio().start(), FakeArkesel().start()
    mailbox = Mailbox(twilio, arkesel).start()  # type: ignore[arg-type]
    os.environ["LOAD_MAILBOX"] = mailbox.url + "/"
    stack = Stack(work, twilio, arkesel)  # type: ignore[arg-type]
    report: dict[str, Any] = {}
    try:
        stack.start_redis()
        print("load: creating the database and 3,001 accounts...", flush=True)
        stack.database()
        for port in PORTS:
            stack.start_app(port)
        account = 0

        print(f"load: plain password logins, {args.seconds} s...", flush=True)
        flows = locust(work, "plain", args.seconds, args.users, account, "plain")
        report["plain"] = summary(flows, args.seconds)

        print(f"load: two-factor logins, {args.seconds} s...", flush=True)
        flows = locust(work, "otp", args.seconds, args.users, account, "otp")
        report["otp"] = summary(flows, args.seconds)
        account += len(flows) + 10

        print("load: limit probe...", flush=True)
        passed, tried = probe_limit(stack)
        [(probe_rows,)] = stack.query(
            "SELECT COUNT(*) FROM otp_auth_challenge c JOIN auth_user u ON u.id = c.user_id "
            f"WHERE u.username = '{PROBE}'"
        )
        digits = PROBE_NUMBER.lstrip("+")
        at_vendors = sum(o.to.lstrip("+") == digits for o in twilio.outgoing) + sum(
            s.recipient.lstrip("+") == digits for s in arkesel.sent
        )
        report["probe"] = {
            "requests": tried,
            "passed": passed,
            "challenges": probe_rows,
            "at_vendors": at_vendors,
            "limit": PROBE_LIMIT,
        }

        print("load: two-factor logins with faults, 70 s...", flush=True)
        timeline: list[tuple[float, str]] = []
        marks: dict[str, float] = {}

        def inject() -> None:
            def at(offset: float, name: str, action: Any) -> None:
                time.sleep(max(0.0, start + offset - time.time()))
                marks[name] = time.time()
                timeline.append((time.time() - start, name))
                action()

            at(8, "twilio 503", lambda: setattr(twilio, "mode", "503"))
            at(20, "twilio ok", lambda: setattr(twilio, "mode", "ok"))
            at(32, "twilio hangs", lambda: setattr(twilio, "mode", "hang"))
            at(48, "redis killed", stack.kill_redis)
            at(50, "redis restarted", stack.start_redis)
            at(56, "instance 2 killed", lambda: stack.kill_app(PORTS[1]))

        start = time.time() + 1.5  # locust's own start-up
        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
        flows = locust(work, "otp", 70, args.users, account, "faults")
        injector.join(timeout=30)
        twilio.mode = "ok"
        end = time.time()
        phases = [
            ("normal", start, marks["twilio 503"]),
            ("twilio 503", marks["twilio 503"], marks["twilio ok"]),
            ("twilio back", marks["twilio ok"], marks["twilio hangs"]),
            ("twilio hangs", marks["twilio hangs"], marks["redis killed"]),
            (
                "twilio hangs, circuit open",
                marks["twilio hangs"] + READ_TIMEOUT * 2 + 1,
                marks["redis killed"],
            ),
            ("redis down and back", marks["redis killed"], marks["redis restarted"] + 2),
            ("one instance left", marks["instance 2 killed"], end),
            ("whole fault run", start, end),
        ]
        report["faults"] = {
            name: summary(window(flows, a, b), b - a) for name, a, b in phases if b > a
        }
        report["timeline"] = timeline
        report["checks"] = checks(stack, twilio, arkesel, flows)
        p = report["probe"]
        report["checks"]["ok_limit_exact"] = (
            p["passed"] == p["challenges"] == p["at_vendors"] == p["limit"]
        )
    finally:
        stack.stop()
        for fake in (mailbox, twilio, arkesel):
            fake.stop()
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"load: logs in {work}")
    return 0 if all(v for k, v in report["checks"].items() if k.startswith("ok_")) else 1


def checks(stack: Stack, twilio: Twilio, arkesel: FakeArkesel, flows: list[Any]) -> dict[str, Any]:
    """The vendors' records against the database."""
    [(accepted, unknown, failed)] = stack.query(
        "SELECT COUNT(*) FILTER (WHERE outcome = 'accepted'), "
        "COUNT(*) FILTER (WHERE outcome = 'unknown'), "
        "COUNT(*) FILTER (WHERE outcome = 'failed') FROM otp_auth_deliveryattempt"
    )
    [(twice,)] = stack.query(
        "SELECT COUNT(*) FROM (SELECT challenge_id FROM otp_auth_deliveryattempt "
        "WHERE outcome = 'accepted' GROUP BY challenge_id HAVING COUNT(*) > 1) t"
    )
    [(lost,)] = stack.query(
        "SELECT COUNT(*) FROM otp_auth_challenge c WHERE c.status IN ('pending', 'verified') "
        "AND NOT EXISTS (SELECT 1 FROM otp_auth_deliveryattempt a "
        "WHERE a.challenge_id = c.id AND a.outcome = 'accepted')"
    )
    statuses = dict(stack.query("SELECT status, COUNT(*) FROM otp_auth_challenge GROUP BY status"))
    [(verified_in_run,)] = stack.query(
        "SELECT COUNT(*) FROM otp_auth_challenge WHERE status = 'verified'"
    )
    at_vendors = len(twilio.outgoing) + len(arkesel.sent)
    twilio_unanswered = len(twilio.requests) - len(twilio.outgoing)
    return {
        "vendor_messages": at_vendors,
        "twilio_messages": len(twilio.outgoing),
        "arkesel_messages": len(arkesel.sent),
        "accepted_attempts": accepted,
        "unknown_attempts": unknown,
        "failed_attempts": failed,
        "twilio_requests_not_taken": twilio_unanswered,
        "challenge_statuses": statuses,
        "verified_challenges": verified_in_run,
        "ok_every_vendor_message_on_record_once": at_vendors == accepted,
        "ok_no_challenge_sent_twice": twice == 0,
        "ok_no_challenge_lost": lost == 0,
    }


def print_report(report: dict[str, Any]) -> None:
    def line(name: str, s: dict[str, Any]) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "0"
        return (
            f"| {name} | {s['ok']}/{s['flows']} | {s['flows_s']:.1f} | {s['p50_ms']:.0f} | "
            f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {errors} |"
        )

    print()
    print("| phase | flows ok | flows/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|--:|--:|--:|--:|--:|---|")
    print(line("plain Django password login", report["plain"]))
    print(line("otp_auth sign-in (password + SMS code)", report["otp"]))
    for name, s in report["faults"].items():
        print(line(f"faults: {name}", s))
    print()
    print("timeline (s):", ", ".join(f"{t:.0f} {n}" for t, n in report["timeline"]))
    p = report["probe"]
    print(
        f"limit probe: {p['requests']} password steps for one account across both instances: "
        f"{p['passed']} sent a code, {p['challenges']} challenges, {p['at_vendors']} at the "
        f"vendors (limit {p['limit']})"
    )
    print("checks:", json.dumps(report["checks"], indent=1))


if __name__ == "__main__":
    sys.exit(main())
