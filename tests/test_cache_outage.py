"""The shared cache unreachable (Redis restarting): the limits cannot be counted, so the
step is refused for now with a 503 and ``Retry-After``, never a 500 (fail closed)."""

from __future__ import annotations

import pytest
import redis

from otp_auth.services import guard
from tests.conftest import password_step

pytestmark = pytest.mark.django_db


def test_an_unreachable_cache_answers_503_not_500(client, user, monkeypatch, outbox) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390.")

    monkeypatch.setattr(guard, "before_send", down)
    response = password_step(client)
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert b"(busy)" in response.content
    assert outbox == []


def test_other_errors_still_propagate(client, user, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(guard, "before_send", broken)
    with pytest.raises(RuntimeError):
        password_step(client)
