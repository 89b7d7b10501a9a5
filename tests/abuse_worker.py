"""A separate process for the cross-process limit tests (``test_abuse_concurrency``).

    python -m tests.abuse_worker '{"mode": "send", "database": ..., ...}'

It configures the test settings against the given database, waits for ``start_at`` so
that the processes run together, does its work, and prints one JSON line of counts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    job: dict[str, Any] = json.loads(argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = job["database"]
    settings.OTP_AUTH = {**settings.OTP_AUTH, "RATE_LIMITS": job["limits"]}

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.db import connection

    from otp_auth.constants import Purpose
    from otp_auth.exceptions import RateLimitedError
    from otp_auth.services import issue_challenge, limits

    if job["mode"] == "send":
        user = get_user_model().objects.get(username=job["username"])
        device = user.otp_devices.get()

        def work() -> None:
            issue_challenge(user=user, device=device, purpose=Purpose.LOGIN)

    else:

        def work() -> None:
            limits.take(job["limit"], job["subject"])

    time.sleep(max(job["start_at"] - time.time(), 0))
    counts = {"ok": 0, "refused": 0}
    for _ in range(job["count"]):
        try:
            work()
        except RateLimitedError:
            counts["refused"] += 1
        else:
            counts["ok"] += 1
    connection.close()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
