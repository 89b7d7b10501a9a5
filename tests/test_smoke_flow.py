from __future__ import annotations

import pytest

from tests.conftest import last_code, password_step

pytestmark = pytest.mark.django_db


def test_password_then_code_logs_in(client, user, outbox):
    response = password_step(client)
    assert response.status_code == 302
    assert response["Location"] == "/account/login/verify/"
    assert len(outbox) == 1
    page = client.get("/account/login/verify/")
    assert "••••4567" in page.content.decode()
    response = client.post("/account/login/verify/", {"code": last_code()})
    assert response.status_code == 302
    assert client.get("/private/").content == b"private alice"
