"""The task a worker runs to send a queued code (``OTP_AUTH["SEND_IN_BACKGROUND"]``).

Django's Tasks framework: ``django.tasks`` on Django 6, the ``django-tasks`` backport
(the ``tasks`` extra) on 5.2. This module is imported only when sending in the
background, so neither is needed otherwise. The arguments name the challenge and the
ticket of its send; they hold no code, no hash and no destination.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["send_challenge", "tasks_module"]


def tasks_module() -> Any:
    """``django.tasks`` when Django has it, else the backport ``django_tasks``."""
    try:
        return importlib.import_module("django.tasks")
    except ImportError:
        return importlib.import_module("django_tasks")


@tasks_module().task()  # type: ignore[untyped-decorator]
def send_challenge(challenge: str, ticket: str, epoch: int, first: bool, attempt: int) -> str:
    """Deliver the queued send ``ticket`` of ``challenge``; what came of it, in one word."""
    from .services import sending

    return sending.deliver(
        challenge=challenge, ticket=ticket, epoch=epoch, first=first, attempt=attempt
    )
