"""R67: a password-only session gets 403 JSON from API views, never a redirect to HTML."""

from __future__ import annotations

import pytest

pytest.importorskip("rest_framework")

from django.test import Client  # noqa: E402

from tests.conftest import PASSWORD  # noqa: E402

pytestmark = pytest.mark.django_db


def password_only(client: Client) -> None:
    response = client.post("/plain-login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_api_views_answer_403_json_to_a_password_only_session(client, user, method):
    password_only(client)
    response = getattr(client, method)("/api/devices/")
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"


def test_a_json_client_gets_403_on_any_page(client, user):
    password_only(client)
    response = client.get("/private/", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.json() == {"code": "otp_required", "detail": "Second factor required."}


def test_a_browser_is_still_redirected(client, user):
    password_only(client)
    response = client.get("/private/", headers={"Accept": "text/html,*/*"})
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/verify/")
