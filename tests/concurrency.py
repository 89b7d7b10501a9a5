"""Running code in real threads at once, for the concurrency proofs on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

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
