"""Shared base for providers that speak HTTP.

``HttpProvider`` owns what every vendor backend needs and should not get wrong on its
own: one ``requests`` session per thread, a ``User-Agent``, connect and read timeouts on
every call, no automatic retries, a JSON guard, and the translation of transport failures
into typed errors:

* connection refused, DNS failure, connect timeout, TLS failure: ``ProviderUnavailableError``
  (nothing was sent, so another provider may be tried);
* read timeout, or the connection dropped after the request went out:
  ``ProviderTimeoutError`` (the vendor may have accepted the message);
* a 5xx reply the vendor documents as "not processed" (``not_processed_statuses``, e.g.
  Twilio's 503): ``ProviderUnavailableError``;
* any other 5xx reply (a 500, 502 or 504 may come from a proxy after the vendor accepted
  the message): ``ProviderTimeoutError``, like a read timeout;
* a reply that is not the JSON we expect: ``ProviderResponseError``.

Errors carry the provider name, the HTTP status and a short excerpt of the reply with every
configured secret redacted; their ``str()`` never includes the excerpt.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from requests.adapters import HTTPAdapter

from .. import __version__
from ..conf import app_settings
from ..exceptions import (
    ConfigurationError,
    ProviderAccountError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from .base import BaseProvider

__all__ = [
    "DELIVERY_STATUSES",
    "HttpProvider",
    "HttpReply",
    "StatusUpdate",
    "callback_url",
]

USER_AGENT = f"otp-auth-django/{__version__}"

#: Normalised delivery statuses, in the order a message moves through them.
DELIVERY_STATUSES = ("queued", "sent", "delivered", "failed")

REDACTED = "[redacted]"


@dataclass(frozen=True)
class HttpReply:
    """A provider's answer: status, headers and body text (never logged)."""

    status: int
    text: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery-status webhook, parsed and authenticated by its provider.

    ``status`` is one of ``DELIVERY_STATUSES`` (or empty when the vendor's value is not
    known); ``raw_status`` is the vendor's own word.
    """

    reference: str
    status: str
    raw_status: str = ""
    error_code: str = ""


def callback_url(view_name: str, **kwargs: str) -> str | None:
    """Absolute URL of one of our webhook views, or ``None`` when ``WEBHOOK_BASE_URL`` is
    unset or the URLconf does not include ``otp_auth.urls``.

    The host comes from the setting, never from a request's ``Host`` header.
    """
    from django.urls import NoReverseMatch, reverse

    base = app_settings.WEBHOOK_BASE_URL
    if not base:
        return None
    try:
        path = reverse(f"otp_auth:{view_name}", kwargs=kwargs)
    except NoReverseMatch:
        return None
    return f"{base}{path}"


def _nothing_sent(exc: BaseException) -> bool:
    """True when a ``requests.ConnectionError`` happened before the request went out.

    urllib3 reports refused connections, DNS failures and TLS handshake failures as the
    ``reason`` of a ``MaxRetryError``; a connection dropped after sending surfaces as a
    ``ProtocolError`` instead, and then the vendor may have received the message.
    """
    from urllib3.exceptions import MaxRetryError, NewConnectionError, SSLError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | SSLError | requests.exceptions.SSLError):
            return True
        if isinstance(item, MaxRetryError):
            stack.append(item.reason)
        stack.extend(item.args)
        stack.append(item.__cause__)
    return False


class HttpProvider(BaseProvider):
    """Base class of the vendor backends.

    Common ``OPTIONS``:

    * ``base_url``: the vendor's API root (to point at a fake server, a proxy or a
      regional endpoint);
    * ``connect_timeout`` / ``read_timeout``: seconds, defaulting to the
      ``HTTP_CONNECT_TIMEOUT`` / ``HTTP_READ_TIMEOUT`` settings.

    Subclasses set ``provider_name``, ``base_url`` and ``secret_options`` (option names
    whose values are redacted from error excerpts), then call ``request()``.
    """

    base_url: ClassVar[str] = ""
    secret_options: ClassVar[tuple[str, ...]] = ()
    #: 5xx statuses the vendor documents as "the request was not processed": safe to send
    #: elsewhere. Every other 5xx leaves the outcome unknown.
    not_processed_statuses: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, alias: str = "default", **options: Any) -> None:
        super().__init__(alias, **options)
        base = options.get("base_url") or self.base_url
        if not isinstance(base, str) or not base.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['base_url'] must be an "
                f"http(s) URL, got {base!r}."
            )
        self.api_root = base.rstrip("/")
        for name in ("connect_timeout", "read_timeout"):
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ConfigurationError(
                    f"OTP_AUTH['PROVIDERS']['{alias}']['OPTIONS']['{name}'] must be a "
                    "positive number of seconds."
                )
        self._local = threading.local()

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, read at call time so settings overrides apply."""
        connect = self.options.get("connect_timeout") or app_settings.HTTP_CONNECT_TIMEOUT
        read = self.options.get("read_timeout") or app_settings.HTTP_READ_TIMEOUT
        return float(connect), float(read)

    @property
    def session(self) -> requests.Session:
        """A session per thread: provider instances are shared, sessions are not."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            # No transport retries: a retried POST could send a second code.
            adapter = HTTPAdapter(max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
        return session

    def url(self, path: str) -> str:
        return f"{self.api_root}/{path.lstrip('/')}"

    def secrets(self) -> list[str]:
        """Values that must never appear in an error excerpt."""
        values = [self.options.get(name) for name in self.secret_options]
        return [v for v in values if isinstance(v, str) and v]

    def excerpt(self, text: str, redact: Iterable[str] = ()) -> str:
        """``text`` cut to 500 characters, with every secret replaced."""
        for secret in [*self.secrets(), *redact]:
            if secret:
                text = text.replace(secret, REDACTED)
        return text[:500]

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        redact: Iterable[str] = (),
    ) -> HttpReply:
        """Send one request; raise a typed error for transport failures and 5xx replies
        (see the module docstring for which error means what).

        4xx replies are returned: only the vendor module knows what its bodies mean.
        ``redact`` adds values (such as the message text) to keep out of error excerpts.
        """
        redact = list(redact)
        connect, read = self.timeout
        try:
            response = self.session.request(
                method,
                self.url(path),
                json=json_body,
                data=form,
                headers=dict(headers or {}),
                auth=auth,
                timeout=(connect, read),
                allow_redirects=False,
            )
        except requests.ConnectTimeout as exc:
            raise ProviderUnavailableError(
                f"could not connect within {connect:g} s", provider=self.provider_name
            ) from exc
        except requests.ReadTimeout as exc:
            raise ProviderTimeoutError(
                f"no answer within {read:g} s", provider=self.provider_name
            ) from exc
        except requests.ConnectionError as exc:
            if _nothing_sent(exc):
                raise ProviderUnavailableError(
                    "could not connect", provider=self.provider_name
                ) from exc
            raise ProviderTimeoutError(
                "connection lost before an answer", provider=self.provider_name
            ) from exc
        except requests.RequestException as exc:
            raise ProviderUnavailableError(
                f"request failed ({type(exc).__name__})", provider=self.provider_name
            ) from exc
        reply = HttpReply(
            status=response.status_code,
            text=response.text,
            headers=dict(response.headers),
        )
        if reply.status >= 500:
            if reply.status in self.not_processed_statuses:
                raise ProviderUnavailableError(
                    "server error",
                    provider=self.provider_name,
                    status=reply.status,
                    response=self.excerpt(reply.text, redact),
                )
            raise ProviderTimeoutError(
                "server error after the request was sent: the message may be on its way",
                provider=self.provider_name,
                status=reply.status,
                response=self.excerpt(reply.text, redact),
            )
        return reply

    def parse_json(self, reply: HttpReply, redact: Iterable[str] = ()) -> Any:
        """The reply's JSON body; ``ProviderResponseError`` when it is not JSON."""
        try:
            return json.loads(reply.text)
        except ValueError as exc:
            raise ProviderResponseError(
                "malformed JSON",
                provider=self.provider_name,
                status=reply.status,
                response=self.excerpt(reply.text, redact),
            ) from exc

    def error_for_status(
        self, reply: HttpReply, message: str, *, vendor_code: str = "", response: str = ""
    ) -> ProviderError:
        """The error a bare 4xx status means when the body says nothing more useful."""
        kwargs: dict[str, Any] = {
            "provider": self.provider_name,
            "status": reply.status,
            "vendor_code": vendor_code,
            "response": response,
        }
        if reply.status in (401, 403):
            return ProviderAccountError(message, reason="authentication", **kwargs)
        if reply.status == 402:
            return ProviderAccountError(message, reason="insufficient_funds", **kwargs)
        if reply.status == 429:
            return ProviderRateLimitError(message, **kwargs)
        return ProviderRejectedError(message, **kwargs)

    # Webhooks ---------------------------------------------------------------------------

    def callback_token(self) -> str:
        """Secret path segment for vendors that cannot sign their callbacks.

        ``OPTIONS["callback_token"]`` when set; otherwise derived from ``SECRET_KEY`` and
        the alias, so it needs no configuration and changes when the key is rotated.
        """
        return self._callback_tokens()[0]

    def _callback_tokens(self) -> list[str]:
        configured = self.options.get("callback_token")
        if configured:
            return [str(configured)]
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        return [
            salted_hmac(
                "otp_auth.providers.callback", self.alias, secret=key, algorithm="sha256"
            ).hexdigest()[:40]
            for key in keys
        ]

    def callback_token_matches(self, token: object) -> bool:
        """Constant-time comparison with every accepted token."""
        if not isinstance(token, str) or not token:
            return False
        matched = False
        for candidate in self._callback_tokens():
            matched |= hmac.compare_digest(candidate.encode(), token.encode())
        return matched

    def parse_status_callback(self, request: HttpRequest, token: str | None) -> StatusUpdate:
        """Authenticate and parse a delivery-status webhook.

        Raise ``django.core.exceptions.PermissionDenied`` when the request is not
        authentic and ``ValueError`` when it lacks the fields we need.
        """
        raise NotImplementedError(f"{type(self).__name__} does not accept status callbacks")
