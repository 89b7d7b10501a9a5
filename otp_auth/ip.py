"""The client's address, as far as this site can trust it.

``X-Forwarded-For`` is written by whoever sends the request, so it is read only when
``TRUSTED_PROXIES`` says which proxies in front of the site append to it. Without that
setting a forged header changes nothing: rate limits and the audit log use
``REMOTE_ADDR``.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from .conf import app_settings

__all__ = ["client_ip"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(raw: str) -> Address | None:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address: ``REMOTE_ADDR``, or the hop ``TRUSTED_PROXIES`` points to."""
    if request is None:
        return None
    remote = _address(str(request.META.get("REMOTE_ADDR", "")))
    if remote is None:
        return None
    trusted = app_settings.TRUSTED_PROXIES
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if not trusted or not forwarded:
        return str(remote)
    hops = [hop.strip() for hop in forwarded.split(",")]
    if isinstance(trusted, int):
        # Each of our ``trusted`` proxies appended the address it received from; the
        # left-most of those appended entries is the client. Entries further left are
        # whatever the client wrote.
        if len(hops) < trusted:
            return str(remote)
        return str(_address(hops[-trusted]) or remote)
    if not any(remote in network for network in trusted):
        return str(remote)  # not sent by one of our proxies: the header is the client's
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return str(remote)  # a trusted proxy never writes garbage: misconfigured
        if not any(address in network for network in trusted):
            return str(address)
    return str(remote)
