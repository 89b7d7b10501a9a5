"""Bad request bodies and a busy database get a 4xx/503 with a stable code, never a 500.

``guard_patterns`` wraps every view of an ``otp_auth`` URLconf (HTML, API and webhooks)
once, where the URLconf is built, so that a route added later is covered too:

* a form body declared in a charset other than UTF-8, or that cannot be decoded, is
  answered ``400`` with code ``invalid_encoding`` before any view or CSRF check reads it
  (Django's CSRF middleware reads ``request.POST`` first and would fail with a 500, so
  the wrapper runs the view's CSRF check itself, after the body is known to be readable);
* ``database is locked`` (SQLite under concurrent writers) is answered ``503`` with
  code ``busy`` and ``Retry-After``: contention is a reason to try again, not a crash.

JSON nested deeper than the parser can follow is refused by ``otp_auth.api.parsers``.
"""

from __future__ import annotations

import codecs
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect

__all__ = ["BUSY_RETRY_AFTER", "guard_patterns", "guard_view", "is_lock_contention"]

logger = logging.getLogger("otp_auth")

Route = TypeVar("Route", bound=URLPattern | URLResolver)

#: Seconds a client is asked to wait after a ``busy`` answer.
BUSY_RETRY_AFTER = 2
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_lock_contention(exc: BaseException) -> bool:
    """Whether ``exc`` says the database was too busy (SQLite's lock), not broken."""
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


def is_cache_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the shared cache (Redis) cannot be reached: the limits cannot
    be counted, so the step is refused for now (fail closed), as a 503, not a 500."""
    module = type(exc).__module__.split(".")[0]
    return module == "redis" and type(exc).__name__ in ("ConnectionError", "TimeoutError")


def _answer(request: HttpRequest, *, api: bool, status: int, code: str, text: str) -> HttpResponse:
    response: HttpResponse
    if api:
        response = JsonResponse({"code": code, "detail": text}, status=status)
    else:
        response = HttpResponse(
            f"{text} ({code})", status=status, content_type="text/plain; charset=utf-8"
        )
    add_never_cache_headers(response)
    return response


def _unreadable_body(request: HttpRequest) -> bool:
    """Whether the form body is in another charset than UTF-8 or fails to decode."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.content_type not in FORM_TYPES:
        return False
    charset = request.content_params.get("charset") if request.content_params else None
    if charset:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            return True
        if name != "utf-8":
            return True
    try:
        request.POST  # noqa: B018 - parse now, inside the try
        request.FILES  # noqa: B018
    except (UnicodeError, LookupError):
        return True
    return False


def guard_view(view: Callable[..., Any], *, api: bool = False) -> Callable[..., Any]:
    """``view`` answering 400 ``invalid_encoding`` and 503 ``busy`` as described above."""
    exempt = getattr(view, "csrf_exempt", False)
    inner = view if exempt else csrf_protect(view)

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not api and _unreadable_body(request):
            return _answer(
                request,
                api=api,
                status=400,
                code="invalid_encoding",
                text=_("The form must be sent as UTF-8."),
            )
        try:
            return inner(request, *args, **kwargs)
        except OperationalError as exc:
            if not is_lock_contention(exc):
                raise
            return _busy(request, api, "database busy", exc)
        except Exception as exc:
            if not is_cache_outage(exc):
                raise
            return _busy(request, api, "cache unreachable", exc)

    # The middleware's CSRF check would read the body before it is known to be readable:
    # the check runs inside instead (csrf_protect above), unless the view is exempt.
    guarded.csrf_exempt = True  # type: ignore[attr-defined]
    guarded.otp_auth_guarded = True  # type: ignore[attr-defined]
    return guarded


def guard_patterns(
    patterns: Iterable[Route],
    *,
    api: bool = False,
    anonymous: Iterable[str] = (),
) -> list[Route]:
    """``patterns`` with every view wrapped by ``guard_view`` (once).

    Views named in ``anonymous`` (every view, for the API, whose clients Django's
    middleware cannot see authenticate) are marked as Django's ``login_not_required``
    does, so that ``LoginRequiredMiddleware`` lets the signed-out and the half-signed-in
    reach the login steps and the password reset.
    """
    open_names = set(anonymous)
    result = list(patterns)
    for entry in result:
        if isinstance(entry, URLPattern) and not getattr(entry.callback, "otp_auth_guarded", 0):
            entry.callback = guard_view(entry.callback, api=api)
            if api or entry.name in open_names:
                entry.callback.login_required = False  # type: ignore[attr-defined]
    return result


def _busy(request: HttpRequest, api: bool, what: str, exc: Exception) -> HttpResponse:
    """A contended database or an unreachable cache: roll back, say so, 503 with
    Retry-After (never a 500 for what passes by itself)."""
    if connection.in_atomic_block:
        transaction.set_rollback(True)
    logger.warning("otp_auth: %s on %s: %s", what, request.path, exc)
    response = _answer(
        request,
        api=api,
        status=503,
        code="busy",
        text=_("The service is busy. Please try again in a moment."),
    )
    response["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response
