"""``manage.py otp_auth_reset_limits [--user NAME ...] [--ip ADDRESS ...]``: clear the send
and refusal counters, the password wait and the second-factor lockout of users.

For a demo or a support desk: a user who tried too often is let in again at once instead
of waiting for the windows to end. Each user's reset is one audit event
(``unlocked``, reason ``limits_reset``); a lockout cleared on the way is audited as
every unlock is, and advances the user's security epoch.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...models import AuditEvent, Device, Lockout
from ...services import audit, guard, limits, lockout

REASON = "limits_reset"


class Command(BaseCommand):
    help = "Clear rate-limit counters, password waits and lockouts of users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            metavar="USERNAME",
            help="A user to clear (repeatable); without it, every user with a lockout.",
        )
        parser.add_argument(
            "--ip",
            action="append",
            default=[],
            metavar="ADDRESS",
            help="Also clear the counters of this client address (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_user_model()
        names: list[str] = options["user"]
        ips: list[str] = options["ip"]
        if names:
            users = []
            for name in names:
                user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
                if user is None:
                    raise CommandError(f"No user named {name!r}.")
                users.append(user)
        else:
            ids = Lockout.objects.values_list("user_id", flat=True)
            users = list(model._default_manager.filter(pk__in=ids))
        for user in users:
            destinations = [
                d.destination_for(d.default_channel) for d in Device.objects.filter(user=user)
            ]
            cleared = limits.forget(limits.user_subjects(user.pk, destinations, ips))
            guard.forget_password_failures(user.get_username())
            state = Lockout.objects.filter(user=user).first()
            unlocked = state is not None and lockout.unlock(state, reason=REASON)
            audit.log(
                AuditEvent.Kind.UNLOCKED,
                user=user,
                reason=REASON,
                detail=f"counters={cleared}" + (" lockout" if unlocked else ""),
            )
            what = f"{cleared} counter(s)" + (", lockout" if unlocked else "")
            self.stdout.write(f"{user.get_username()}: cleared {what}")
        if ips and not users:
            cleared = limits.forget(limits.user_subjects("-", [], ips))
            self.stdout.write(f"cleared {cleared} counter(s) of {', '.join(ips)}")
        if not users and not ips:
            self.stdout.write("Nothing to clear: no user has a lockout.")
