"""R92 for sends: every log record, at every level and from every logger (``requests``
and ``urllib3`` included), during successful and failed sends, checks and webhooks,
holds no API key, auth token, Basic credential, callback token or code."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from otp_auth.providers import get_provider
from otp_auth.providers.twilio import compute_signature
from tests.conftest import password_step
from tests.fakes import Reply
from tests.fakes.arkesel import result
from tests.fakes.twilio import error

from .conftest import WEBHOOK_BASE, arkesel_options, code_in, twilio_options

pytestmark = pytest.mark.django_db


class Everything(logging.Handler):
    """Keeps every record with its formatted message and traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)  # fills exc_text
        self.records.append(record)

    def texts(self) -> list[str]:
        return [
            " ".join([r.getMessage(), repr(r.args), r.exc_text or "", str(r.__dict__)])
            for r in self.records
        ]


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(n) for n in ("urllib3", "requests", "otp_auth"))]
    levels = [lg.level for lg in loggers]
    root.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


def assert_clean(captured: Everything, secrets: list[str]) -> None:
    texts = captured.texts()
    assert any("urllib3" in r.name for r in captured.records), "transport logging not captured"
    for secret in secrets:
        assert secret
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"{secret!r} leaked: {leaks[:1]}"


def twilio_secrets(fake) -> list[str]:
    basic = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    return [fake.auth_token, basic]


@pytest.mark.parametrize(
    "failure",
    [None, Reply(503, body="down"), Reply(200, body="{oops"), Reply(drop=True), "timeout"],
    ids=["ok", "5xx", "malformed", "dropped", "timeout"],
)
def test_arkesel_sms(client, user, use_providers, fake_arkesel, captured, failure):
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=("otp_auth.providers.arkesel.SMSProvider", arkesel_options(fake_arkesel)),
    )
    if failure == "timeout":
        failure = Reply(200, {"status": "success", "data": []}, delay=1.0)
    if failure is not None:
        fake_arkesel.script(failure)
    password_step(client)
    secrets = [fake_arkesel.api_key, get_provider("default").callback_token()]
    if failure is None:
        sms = fake_arkesel.sent[0]
        code = code_in(sms.text)
        client.post("/account/login/verify/", {"code": "000000" if code != "000000" else "1"})
        client.post("/account/login/verify/", {"code": code})
        token = get_provider("default").callback_token()
        Client().get(
            f"/account/webhooks/default/{token}/", {"sms_id": sms.id, "status": "DELIVERED"}
        )
        Client().get("/account/webhooks/default/bad-token/", {"sms_id": sms.id, "status": "x"})
        secrets.append(code)
    else:
        secrets.append(code_in(fake_arkesel.requests[0].json["message"]))
    assert_clean(captured, secrets)


@pytest.mark.parametrize("failure", [None, "1007", "1011", "503"], ids=str)
def test_arkesel_hosted_verify(client, user, use_providers, fake_arkesel, captured, failure):
    use_providers(
        default=("otp_auth.providers.arkesel.VerifyProvider", arkesel_options(fake_arkesel))
    )
    if failure == "503":
        fake_arkesel.script(Reply(503, body=""))
    elif failure:
        fake_arkesel.script(result(failure))
    password_step(client)
    secrets = [fake_arkesel.api_key]
    if failure is None:
        code = fake_arkesel.codes["233241234567"][0]
        fake_arkesel.script(result("1106"))  # a failed check is logged too
        client.post("/account/login/verify/", {"code": code})
        client.post("/account/login/verify/", {"code": code})
        secrets.append(code)
    assert_clean(captured, secrets)


@pytest.mark.parametrize(
    "failure",
    [None, error(20003, "Authenticate"), error(21211, "The 'To' number is not valid")],
    ids=["ok", "auth", "invalid-number"],
)
@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_twilio_messaging(client, user, use_providers, fake_twilio, captured, failure, channel):
    use_providers(
        {"WEBHOOK_BASE_URL": WEBHOOK_BASE},
        default=(
            "otp_auth.providers.twilio.SMSProvider",
            twilio_options(fake_twilio, from_number="+15005550006"),
        ),
    )
    user.otp_devices.update(channels=[channel])
    if failure is not None:
        fake_twilio.script(failure)
    password_step(client)
    secrets = twilio_secrets(fake_twilio)
    form = fake_twilio.requests[0].form
    secrets.append(code_in(form.get("Body") or form["Twiml"].replace(", ", "")))
    if failure is None:
        sid = fake_twilio.outgoing[0].sid
        params = {"MessageSid": sid, "MessageStatus": "delivered"}
        url = f"{WEBHOOK_BASE}/account/webhooks/default/"
        signature = compute_signature(fake_twilio.auth_token, url, params.items())
        Client().post("/account/webhooks/default/", params, HTTP_X_TWILIO_SIGNATURE=signature)
        Client().post("/account/webhooks/default/", params, HTTP_X_TWILIO_SIGNATURE="forged")
        secrets.append(signature)
    assert_clean(captured, secrets)


def test_twilio_verify_and_failover(
    client, user, use_providers, fake_arkesel, fake_twilio, captured
):
    use_providers(
        default=("otp_auth.providers.routing.VerifyProvider", {"providers": ["ark", "tw"]}),
        ark=("otp_auth.providers.arkesel.VerifyProvider", arkesel_options(fake_arkesel)),
        tw=(
            "otp_auth.providers.twilio.VerifyProvider",
            twilio_options(fake_twilio, service_sid=fake_twilio.service_sid),
        ),
    )
    fake_arkesel.script(result("1011"))  # "Internal error": nothing was sent
    password_step(client)
    code = fake_twilio.code_for("+233241234567")
    client.post("/account/login/verify/", {"code": "000000" if code != "000000" else "1"})
    fake_twilio.script(Reply(502, body=""))
    client.post("/account/login/verify/", {"code": code})
    client.post("/account/login/verify/", {"code": code})
    assert client.get("/private/").content == b"private alice"
    assert_clean(captured, [fake_arkesel.api_key, *twilio_secrets(fake_twilio), code])
