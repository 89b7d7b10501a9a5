"""Running code in real threads at once, for the concurrency proofs on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection


def race(threads: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` in ``threads`` threads released together by a barrier; return each
    thread's result or exception. Each thread closes its own database connection."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in workers), "a thread hung"
    return results


def require_postgresql() -> None:
    """Skip unless the database is PostgreSQL: SQLite has no row locks to prove anything
    with (CI sets OTP_AUTH_REQUIRE_POSTGRES=1, which turns this skip into a failure)."""
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL for real row locks across connections; DATABASE_URL points "
            f"to {connection.vendor}"
        )


def outcome_names(results: list[Any]) -> Counter[str]:
    """``race`` results tallied: ``"ok"`` for a return, the class name for an exception."""
    return Counter(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)
