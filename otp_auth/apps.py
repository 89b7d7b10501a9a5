from __future__ import annotations

from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class OtpAuthConfig(AppConfig):
    name = "otp_auth"
    verbose_name = _("Two-factor authentication")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            providers,  # noqa: F401  (connects the setting_changed receiver)
        )
        from .conf import app_settings
        from .services import audit, epoch, factors

        audit.connect()  # audit rows for device and delivery-status events
        factors.connect()  # any deletion of a factor is audited and advances the epoch
        epoch.connect()  # a password change or deactivation advances the epoch
        if apps.is_installed("django.contrib.admin") and app_settings.ADMIN_USER_FACTORS:
            # The site's UserAdmin, with 2FA status and a step-up before password changes.
            from .admin import install_user_admin

            install_user_admin()
        if apps.is_installed("django.contrib.admin") and apps.is_installed(
            "rest_framework.authtoken"
        ):
            # DRF's own token admin lists keys in clear; only then is DRF imported.
            from .api import admin as api_admin

            api_admin.install()
