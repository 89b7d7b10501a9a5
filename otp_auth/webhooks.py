"""Delivery-status webhooks: vendors report queued, sent, delivered or failed.

One view serves every provider alias; the provider authenticates and parses the request:

* Twilio signs each callback (``X-Twilio-Signature``), checked against the public URL
  built from ``WEBHOOK_BASE_URL``, never from the ``Host`` header;
* Arkesel signs nothing, so its callback URL carries a secret token of ours
  (``.../webhooks/<alias>/<token>/``), compared in constant time.

A request that fails authentication gets 403 and changes nothing; one for an unknown
alias or a provider without callbacks gets 404. Vendors retry on errors, so an
authentic callback for a message we do not know still gets 204.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .providers import get_provider
from .providers.http import HttpProvider
from .services import delivery

__all__ = ["delivery_status"]


@csrf_exempt  # Vendors cannot send a CSRF token; each request is authenticated instead.
@require_http_methods(["GET", "POST"])
def delivery_status(request: HttpRequest, alias: str, token: str | None = None) -> HttpResponse:
    """Record a delivery status reported by the provider configured as ``alias``."""
    try:
        provider = get_provider(alias)
    except ImproperlyConfigured as exc:
        raise Http404("unknown provider") from exc
    if not isinstance(provider, HttpProvider):
        raise Http404("provider takes no callbacks")
    try:
        update = provider.parse_status_callback(request, token)
    except NotImplementedError as exc:
        raise Http404("provider takes no callbacks") from exc
    except PermissionDenied:
        return HttpResponse(status=403)
    except ValueError:
        return HttpResponseBadRequest()
    delivery.record_status(alias, update)
    return HttpResponse(status=204)
