"""One benchmark run against one database; ``python -m benchmarks`` starts one per database.

Everything runs in this process through Django's test client, so the figures measure the
framework and the package, not a web server or the network. Each rate is the median of
``repeats`` timed blocks; the plain and two-factor blocks alternate (ABBA) so that drift in
the machine's speed affects both alike. Prints one JSON object on stdout.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from otp_auth import totp as otp  # noqa: E402
from otp_auth.crypto import generate_public_id  # noqa: E402
from otp_auth.encryption import decrypt_seed  # noqa: E402
from otp_auth.models import Challenge, Device, TOTPDevice  # noqa: E402
from otp_auth.providers import locmem  # noqa: E402
from otp_auth.services import totp as totp_service  # noqa: E402

PASSWORD = "correct horse battery staple"
CODE_RE = re.compile(r"\b([0-9A-Z]{6,})\b")
SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cache": "django.contrib.sessions.backends.cache",
}

Steps = list[tuple[str, Callable[[], None]]]


@dataclass
class Scale:
    """How long one run takes; ``--quick`` shrinks it to a smoke test.

    Blocks are sized in seconds, not calls, so a slow or busy machine takes no longer.
    """

    flow_block: float = 0.4
    request_block: float = 0.25
    repeats: int = 9
    warmup: int = 10
    others: int = 100_000


QUICK = Scale(flow_block=0.05, request_block=0.03, repeats=3, warmup=2, others=2_000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def expect(response: Any, status: int, location: str | None = None) -> None:
    if response.status_code != status:
        raise AssertionError(f"{response.request['PATH_INFO']}: {response.status_code}")
    if location is not None and response["Location"] != location:
        raise AssertionError(f"{response.request['PATH_INFO']}: to {response['Location']}")


class Clock:
    """The TOTP service's clock, one period further at every login: an app's code is
    accepted once per period, and a benchmark logs in hundreds of times a second."""

    def __init__(self) -> None:
        self.at = timezone.now()

    def tick(self) -> None:
        self.at += timedelta(seconds=30)

    def __call__(self) -> Any:
        return self.at


CLOCK = Clock()
totp_service._now = CLOCK  # type: ignore[assignment]


def make_client(middleware: list[str], session_engine: str) -> Client:
    """A client whose handler is built once, with this middleware and session backend."""
    client = Client()
    with override_settings(MIDDLEWARE=middleware, SESSION_ENGINE=session_engine):
        client.handler.load_middleware()
    return client


class Flows:
    """Plain Django's login and otp_auth's, each as named steps, for one session backend."""

    def __init__(self, session_engine: str) -> None:
        self.session_engine = session_engine
        self.plain = make_client(list(settings.PLAIN_MIDDLEWARE), session_engine)
        self.otp = make_client(list(settings.MIDDLEWARE), session_engine)

    def plain_steps(self) -> Steps:
        client = self.plain

        def get_login() -> None:
            client.cookies.clear()  # a new visitor
            expect(client.get("/plain/login/"), 200)

        def post_password() -> None:
            data = {"username": "plain", "password": PASSWORD}
            expect(client.post("/plain/login/", data), 302)

        def get_protected() -> None:
            expect(client.get("/private/"), 200)

        return [
            ("GET login", get_login),
            ("POST password", post_password),
            ("GET protected", get_protected),
        ]

    def otp_steps(self, factor: str = "sms") -> Steps:
        """A browser's login: every redirect is followed, so the code page is fetched
        whenever the password step answers with a redirect to it."""
        client = self.otp
        username = "alice" if factor == "sms" else "tina"
        state: dict[str, Any] = {}

        def get_login() -> None:
            client.cookies.clear()
            locmem.clear()
            CLOCK.tick()
            expect(client.get("/account/login/"), 200)

        def post_password() -> None:
            data = {"username": username, "password": PASSWORD}
            response = client.post("/account/login/", data)
            state["password"] = response
            if response.status_code == 302:
                expect(response, 302, "/account/login/verify/")
            else:
                expect(response, 200)

        def get_code_page() -> None:
            if state["password"].status_code == 302:
                expect(client.get("/account/login/verify/"), 200)

        def post_code() -> None:
            if factor == "sms":
                match = CODE_RE.search(locmem.outbox[-1].text)
                assert match, "no code in the message"
                code = match.group(1)
            else:
                code = otp.totp(TOTP_SEED[0], CLOCK.at.timestamp())
            expect(client.post("/account/login/verify/", {"code": code}), 302, "/private/")

        def get_protected() -> None:
            expect(client.get("/private/"), 200)

        return [
            ("GET login", get_login),
            ("POST password", post_password),
            ("GET code page", get_code_page),
            ("POST code", post_code),
            ("GET protected", get_protected),
        ]

    def plain_flow(self) -> None:
        for _name, step in self.plain_steps():
            step()

    def otp_flow(self) -> None:
        for _name, step in self.otp_steps():
            step()

    def totp_flow(self) -> None:
        for _name, step in self.otp_steps("totp"):
            step()


def per_second(fn: Callable[[], None], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def calls_for(fn: Callable[[], None], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (at least 3)."""
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return max(3, round(seconds / statistics.median(timings)))


def race(
    plain: Callable[[], None], otp: Callable[[], None], seconds: float, repeats: int
) -> dict[str, float]:
    """Median calls per second of each over ``repeats`` rounds of blocks of about
    ``seconds``, in ABBA order, and the median of the rounds' otp/plain ratios: each round
    times both back to back, so a ratio survives most of the drift of a shared machine."""
    rates: dict[str, list[float]] = {"plain": [], "otp": []}
    order = [("plain", plain, calls_for(plain, seconds)), ("otp", otp, calls_for(otp, seconds))]
    for i in range(repeats):
        for name, fn, n in order if i % 2 == 0 else order[::-1]:
            rates[name].append(per_second(fn, n))
    ratios = [o / p for o, p in zip(rates["otp"], rates["plain"], strict=True)]
    return {
        "plain": statistics.median(rates["plain"]),
        "otp": statistics.median(rates["otp"]),
        "ratio": statistics.median(ratios),
    }


def count_queries(steps: Steps) -> dict[str, int]:
    counts = {}
    for name, step in steps:
        with CaptureQueriesContext(connection) as ctx:
            step()
        counts[name] = len(ctx)
    return counts


TOTP_SEED: list[bytes] = []


def make_users() -> None:
    """alice signs in with a code by SMS, tina with an authenticator app."""
    user_model = get_user_model()
    alice = user_model.objects.create_user("alice", password=PASSWORD)
    Device.objects.create(
        user=alice, phone_number="+233241234567", channels=["sms"], confirmed=True, name="Phone"
    )
    tina = user_model.objects.create_user("tina", password=PASSWORD)
    app = totp_service.create_device(tina, name="Phone app")
    app.confirmed = True
    app.save()
    TOTPDevice.objects.filter(pk=app.pk).update(last_step=None)
    TOTP_SEED.append(decrypt_seed(app.encrypted_seed))
    user_model.objects.create_user("plain", password=PASSWORD)


def insert_rows(template: Any, rows: list[dict[str, Any]]) -> None:
    """Insert one row per dict of overrides; other columns take ``template``'s values.

    Values are prepared by the model's own fields, so the rows are what ``save()`` would
    write; ``COPY`` (PostgreSQL) and multi-row ``INSERT``s load 100,000 rows in seconds
    where ``bulk_create`` takes half a minute.
    """
    model = type(template)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    base = {f.attname: f.get_db_prep_save(f.pre_save(template, True), connection) for f in fields}
    names = [f.attname for f in fields]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row.get(name, base[name]) for name in names])
            return
        one = "({})".format(", ".join(["%s"] * len(fields)))
        for start in range(0, len(rows), 500):
            part = rows[start : start + 500]
            params = [row.get(name, base[name]) for row in part for name in names]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(part))}", params
            )


def add_others(count: int) -> None:
    """``count`` other users, each with a confirmed device and a pending login challenge."""
    user_model = get_user_model()
    now = timezone.now()
    with transaction.atomic():
        insert_rows(
            user_model(password="!", date_joined=now),
            [{"username": f"other{i:07d}"} for i in range(count)],
        )
        users = list(
            user_model.objects.filter(username__startswith="other").values_list("pk", flat=True)
        )
        insert_rows(
            Device(phone_number="+233241234567", channels=["sms"], confirmed=True, created_at=now),
            [{"user_id": pk} for pk in users],
        )
        devices = Device.objects.exclude(user__username__in=["alice", "plain"]).values_list(
            "pk", "user_id"
        )
        insert_rows(
            Challenge(
                purpose="login",
                channel="sms",
                provider_alias="default",
                destination_masked="••••4567",
                max_attempts=5,
                send_count=1,
                created_at=now,
                last_sent_at=now,
                expires_at=now + timedelta(minutes=5),
            ),
            [
                {"public_id": generate_public_id(), "device_id": pk, "user_id": user_id}
                for pk, user_id in devices
            ],
        )
    if connection.vendor == "postgresql":
        # What autovacuum and the checkpointer do soon after a bulk load, done now so
        # that neither starts halfway through a timed block.
        with connection.cursor() as cursor:
            for table in ("auth_user", "otp_auth_device", "otp_auth_challenge"):
                cursor.execute(f"VACUUM ANALYZE {table}")
            cursor.execute("CHECKPOINT")


def versions() -> dict[str, str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
        else:
            cursor.execute("show server_version")
        db_version = str(cursor.fetchone()[0]).split()[0]
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": f"{connection.display_name} {db_version}",
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
    }


def login_figures(flows: Flows, scale: Scale, factor: str = "sms") -> dict[str, Any]:
    otp_flow = flows.otp_flow if factor == "sms" else flows.totp_flow
    rates = race(flows.plain_flow, otp_flow, scale.flow_block, scale.repeats)
    return {
        "plain_flows_s": rates["plain"],
        "otp_flows_s": rates["otp"],
        "ratio": rates["ratio"],
        "plain_queries": count_queries(flows.plain_steps()),
        "otp_queries": count_queries(flows.otp_steps(factor)),
    }


def request_figures(flows: Flows, scale: Scale) -> dict[str, Any]:
    """One verified session, sent through the same view by two handlers: with and
    without OTPMiddleware."""
    flows.otp_flow()
    with_otp = flows.otp
    without_otp = make_client(list(settings.PLAIN_MIDDLEWARE), flows.session_engine)
    without_otp.cookies = with_otp.cookies

    def get(client: Client) -> Callable[[], None]:
        return lambda: expect(client.get("/private/"), 200)

    rates = race(get(without_otp), get(with_otp), scale.request_block, scale.repeats)
    return {
        "plain_requests_s": rates["plain"],
        "otp_requests_s": rates["otp"],
        "ratio": rates["ratio"],
        "plain_queries": count_queries([("GET protected", get(without_otp))])["GET protected"],
        "otp_queries": count_queries([("GET protected", get(with_otp))])["GET protected"],
    }


def benchmark(scale: Scale) -> dict[str, Any]:
    flows = {name: Flows(engine) for name, engine in SESSION_ENGINES.items()}
    log(f"{connection.display_name}: warm-up")
    for each in flows.values():
        for _ in range(scale.warmup):
            each.plain_flow()
            each.otp_flow()
            each.totp_flow()
    figures: dict[str, Any] = {}
    for name, each in flows.items():
        log(f"{connection.display_name}: login flows, {name} sessions")
        figures[f"login_{name}"] = login_figures(each, scale)
    log(f"{connection.display_name}: authenticator-app login flows, db sessions")
    figures["login_totp"] = login_figures(flows["db"], scale, "totp")
    log(f"{connection.display_name}: verified-session requests")
    figures["request"] = request_figures(flows["db"], scale)
    log(f"{connection.display_name}: adding {scale.others:,} other users")
    started = time.perf_counter()
    add_others(scale.others)
    log(f"{connection.display_name}: added in {time.perf_counter() - started:.1f}s")
    for _ in range(scale.warmup):
        flows["db"].plain_flow()
        flows["db"].otp_flow()
    log(f"{connection.display_name}: login flows, db sessions, full tables")
    figures["login_db_full"] = login_figures(flows["db"], scale)
    figures["others"] = scale.others
    return figures


def main(argv: list[str]) -> int:
    scale = QUICK if "--quick" in argv else Scale()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        make_users()
        meta = versions()
        started = time.perf_counter()
        figures = benchmark(scale)
        meta["seconds"] = f"{time.perf_counter() - started:.0f}"
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    result = {"vendor": connection.vendor, "meta": meta, "scale": asdict(scale), **figures}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
