"""Provider registry: one instance per alias, built from ``OTP_AUTH['PROVIDERS']``."""

from __future__ import annotations

import functools
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import app_settings
from ..exceptions import ConfigurationError
from .base import BaseProvider, DeliveryResult, HostedVerification, OTPMessage

__all__ = [
    "BaseProvider",
    "DeliveryResult",
    "HostedVerification",
    "OTPMessage",
    "get_provider",
    "provider_for_channel",
]


@functools.cache
def get_provider(alias: str = "default") -> BaseProvider:
    """The provider configured under ``alias``; raises ``ConfigurationError`` if unusable."""
    providers = app_settings.PROVIDERS
    if alias not in providers:
        raise ConfigurationError(f"OTP_AUTH['PROVIDERS'] has no alias {alias!r}.")
    conf = providers[alias]
    try:
        cls = import_string(conf["BACKEND"])
    except ImportError as exc:
        raise ConfigurationError(
            f"OTP_AUTH['PROVIDERS']['{alias}']['BACKEND'] = {conf['BACKEND']!r} "
            f"cannot be imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise ConfigurationError(
            f"OTP_AUTH['PROVIDERS']['{alias}']['BACKEND'] must be a BaseProvider subclass."
        )
    provider: BaseProvider = cls(alias=alias, **conf["OPTIONS"])
    return provider


def provider_for_channel(channel: str) -> BaseProvider:
    """The provider that delivers ``channel`` (``CHANNEL_PROVIDERS`` or ``default``)."""
    return get_provider(app_settings.provider_alias_for(channel))


@receiver(setting_changed)
def _reset_providers(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("OTP_AUTH"):
        get_provider.cache_clear()
