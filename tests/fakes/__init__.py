"""Loopback fake servers that speak the vendors' wire formats, for tests and the demo.

Run one in a terminal to watch the demo's sends (the fake prints each message)::

    python -m tests.fakes arkesel --port 8765
    python -m tests.fakes twilio --port 8766
"""

from __future__ import annotations

from .arkesel import FakeArkesel
from .server import FakeServer, Recorded, Reply
from .twilio import FakeTwilio

__all__ = ["FakeArkesel", "FakeServer", "FakeTwilio", "Recorded", "Reply"]
