"""Small request helpers shared by services and views."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from .ip import client_ip  # REMOTE_ADDR, or the hop TRUSTED_PROXIES points to

__all__ = ["client_ip", "safe_next_url", "user_agent"]


def user_agent(request: HttpRequest | None) -> str:
    """The ``User-Agent`` header, without control characters, cut to 256 characters."""
    if request is None:
        return ""
    raw = str(request.META.get("HTTP_USER_AGENT", ""))
    return "".join(ch for ch in raw if ch.isprintable())[:256]


def safe_next_url(request: HttpRequest, candidate: object) -> str | None:
    """``candidate`` if it is a same-site URL, else ``None``.

    Uses Django's ``url_has_allowed_host_and_scheme``, which refuses ``//evil.example``,
    ``https:evil.example``, ``/\\evil.example`` and ``javascript:`` URLs.
    """
    if not isinstance(candidate, str) or not candidate or len(candidate) > 2048:
        return None
    if url_has_allowed_host_and_scheme(
        candidate,
        allowed_hosts={request.get_host()},
        require_https=request.is_secure(),
    ):
        return candidate
    return None
