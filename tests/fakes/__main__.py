"""``python -m tests.fakes arkesel|twilio [--port N]``: run a fake vendor in the foreground.

It prints every message it receives (codes included: it stands in for the user's phone)
and the settings that point the demo at it.
"""

from __future__ import annotations

import argparse
import threading

from .arkesel import FakeArkesel
from .twilio import FakeTwilio


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes")
    parser.add_argument("vendor", choices=["arkesel", "twilio"])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.vendor == "arkesel":
        fake: FakeArkesel | FakeTwilio = FakeArkesel(verbose=True).start(args.port)
        print(
            f"Fake Arkesel on {fake.url}. Run the demo with:\n"
            f"  OTP_PROVIDER=arkesel ARKESEL_BASE_URL={fake.url} "
            f"ARKESEL_API_KEY={fake.api_key} make demo",
            flush=True,
        )
    else:
        fake = FakeTwilio(verbose=True).start(args.port)
        print(
            f"Fake Twilio on {fake.url}. Run the demo with:\n"
            f"  OTP_PROVIDER=twilio TWILIO_BASE_URL={fake.url} "
            f"TWILIO_ACCOUNT_SID={fake.account_sid} TWILIO_AUTH_TOKEN={fake.auth_token} "
            "TWILIO_FROM_NUMBER=+15005550006 make demo",
            flush=True,
        )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
