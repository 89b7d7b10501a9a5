"""Template helpers of the package's pages: ``{% load otp_auth %}``.

``otp_page`` gives the base layout what it shows around every page (site name, home,
whether to offer the account menu); ``channel_names`` turns stored channel values into
words ("SMS, voice call"); ``csp_nonce`` prints the ``nonce`` attribute when the site's
CSP middleware (Django 6's, or django-csp) put one on the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from ..conf import app_settings
from ..constants import Channel

register = template.Library()


@register.simple_tag(takes_context=True)
def otp_page(context: Any) -> dict[str, Any]:
    """``{% otp_page as page %}``: ``page.site_name``, ``page.home_url`` and
    ``page.signed_in`` (a user who is signed in, with the second factor when they have
    one: only then is the account menu of use)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated)
    if signed_in:
        verified = getattr(user, "is_verified", None)
        signed_in = bool(verified()) if callable(verified) else True
    return {
        "site_name": app_settings.SITE_NAME or _("Account"),
        "home_url": "/",
        "signed_in": signed_in,
        "authenticated": bool(user is not None and user.is_authenticated),
    }


#: Channel names as words inside a sentence or list ("SMS, voice call").
LIST_WORDS = {
    Channel.SMS.value: pgettext_lazy("channel, inside a list", "SMS"),
    Channel.VOICE.value: pgettext_lazy("channel, inside a list", "voice call"),
    Channel.EMAIL.value: pgettext_lazy("channel, inside a list", "email"),
}


@register.filter
def channel_names(channels: Iterable[str]) -> str:
    """``["sms", "voice"]`` → ``"SMS, voice call"``, in the active language."""
    words = [str(LIST_WORDS.get(str(c), c)) for c in channels]
    return capfirst(", ".join(words)) if words else ""


@register.simple_tag(takes_context=True)
def csp_nonce(context: Any) -> SafeString:
    """`` nonce="..."`` for a ``<script>`` or ``<link>`` when the request carries one."""
    request = context.get("request")
    nonce = getattr(request, "csp_nonce", None)
    if not nonce:
        return SafeString("")
    return format_html(' nonce="{}"', str(nonce))
