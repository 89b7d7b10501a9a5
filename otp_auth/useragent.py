"""A short, safe description of a ``User-Agent`` for messages to users.

The header is whatever the client sends: a notification that quoted it would let anyone
who knows a password put their own words and links into the owner's mailbox, under
the site's name. ``describe()`` answers only from a fixed list of product names
("Firefox on Windows"), matched as tokens; anything it does not know is "an unknown
browser". Nothing of the header itself ever reaches the text.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

__all__ = ["describe"]

# (token, name), first match wins: browsers built on others name their base too (Edge
# and Opera say "Chrome", Chrome says "Safari"), so the more specific come first.
_BROWSERS: tuple[tuple[str, str], ...] = (
    ("EdgiOS", "Edge"),
    ("EdgA", "Edge"),
    ("Edg", "Edge"),
    ("Edge", "Edge"),
    ("OPiOS", "Opera"),
    ("OPR", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("YaBrowser", "Yandex Browser"),
    ("Vivaldi", "Vivaldi"),
    ("FxiOS", "Firefox"),
    ("Firefox", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chromium", "Chromium"),
    ("Chrome", "Chrome"),
    ("MSIE", "Internet Explorer"),
    ("Trident", "Internet Explorer"),
    ("curl", "curl"),
    ("Wget", "Wget"),
    ("python-requests", "Python"),
    ("python-urllib", "Python"),
    ("okhttp", "OkHttp"),
)

_OS: tuple[tuple[str, str], ...] = (
    ("Windows Phone", "Windows Phone"),
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPod", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
    ("FreeBSD", "FreeBSD"),
)

# A token starts after a separator and ends at "/", a separator or the end: "Firefox"
# matches "Firefox/121.0" but not "NotFirefox" or "Firefoxy".
_BOUNDARY = r"(?:^|[\s;(),/])"
_END = r"(?=[/\s;(),]|$)"


def _compile(names: tuple[tuple[str, str], ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple(
        (re.compile(_BOUNDARY + re.escape(token) + _END, re.IGNORECASE), name)
        for token, name in names
    )


_BROWSER_PATTERNS = _compile(_BROWSERS)
_OS_PATTERNS = _compile(_OS)
_SAFARI = re.compile(_BOUNDARY + r"Version/[\d.]+.*" + _BOUNDARY + r"Safari/", re.IGNORECASE)
_MAX_LENGTH = 512


def _first(patterns: tuple[tuple[re.Pattern[str], str], ...], header: str) -> str:
    for pattern, name in patterns:
        if pattern.search(header):
            return name
    return ""


def describe(header: object) -> str:
    """The product names only: "Firefox on Windows", "Chrome", or "an unknown browser"."""
    if not isinstance(header, str) or not header:
        return _("an unknown browser")
    header = header[:_MAX_LENGTH]
    browser = _first(_BROWSER_PATTERNS, header)
    if not browser and _SAFARI.search(header):
        browser = "Safari"
    system = _first(_OS_PATTERNS, header)
    if browser and system:
        return _("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    if browser:
        return browser
    if system:
        return _("an unknown browser on %(system)s") % {"system": system}
    return _("an unknown browser")
