"""R68, concurrent variant: the same challenge and code sent twice at once over the API
give one credential. Needs PostgreSQL (real row locks across connections):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pytest tests/api/test_concurrency.py
"""

from __future__ import annotations

import pytest

pytest.importorskip("rest_framework")

from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from tests.api.conftest import start  # noqa: E402
from tests.concurrency import race, require_postgresql  # noqa: E402
from tests.conftest import last_code  # noqa: E402
from tests.test_concurrency import overlap  # noqa: E402, F401  (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql()


def test_the_same_code_twice_at_once_issues_one_credential(user, overlap):  # noqa: F811
    challenge = start(APIClient())
    code = last_code()

    def submit(_: int) -> int:
        response = APIClient().post("/api/login/verify/", {"challenge": challenge, "code": code})
        return int(response.status_code)

    assert sorted(race(4, submit)) == [200, 401, 401, 401]
    assert Token.objects.count() == 1
    assert overlap["most"] == 1  # the checks ran one at a time, under the row lock
