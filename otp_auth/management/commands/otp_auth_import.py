"""``manage.py otp_auth_import [--source NAME] [--user NAME ...] [--dry-run]``: move the
factors of django-otp, django-two-factor-auth or django-allauth's ``mfa`` here, so users
keep their authenticator apps, phones and backup codes.

Read from the other package's own models (through the app registry, so none of them is a
dependency): django-otp's ``TOTPDevice`` (hex key, step, digits, ``last_t``) and
``StaticDevice`` tokens, django-two-factor-auth's ``PhoneDevice`` (number and method), and
allauth's ``Authenticator`` rows of type ``totp`` (the secret opened with allauth's own
adapter ``decrypt``) and ``recovery_codes`` (the codes allauth's ``RecoveryCodes`` still
counts unused). Written through ``services.importing``. Each user is one transaction.
Prints counts per kind and the ids of rows it could not use; never a seed or a code.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, models, transaction

from ... import totp as otp
from ...constants import Channel
from ...models import ImportedFactor
from ...services import importing
from ...services.importing import UnreadableFactor
from ...services.recovery import normalize_imported_code

Kind = ImportedFactor.Kind
SOURCES = ("django_otp", "two_factor", "allauth", "all")
READY, DONE, SKIPPED, UNREADABLE = "ready", "already imported", "skipped", "unreadable"


@dataclass
class Row:
    """One factor row of the source: what it is and, when ready, how to write it."""

    source: str
    source_id: str
    user_id: Any
    kind: str
    state: str = READY
    why: str = ""
    write: Callable[[Any], object] | None = field(default=None, repr=False)


def _model(app_name: str, model_name: str) -> type[models.Model] | None:
    """The model of an installed app, found by the app's module path; else ``None``."""
    for config in apps.get_app_configs():
        if config.name == app_name:
            return config.get_model(model_name)
    return None


def _rows(model: type[models.Model] | None, user_id: Any, **filters: Any) -> Iterator[models.Model]:
    if model is None:
        return iter(())
    qs = model._default_manager.filter(**filters).order_by("pk")
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    return qs.iterator()


def _unreadable(row: Row, why: str) -> Row:
    row.state, row.why = UNREADABLE, why
    return row


def _skipped(row: Row, why: str) -> Row:
    row.state, row.why = SKIPPED, why
    return row


def django_otp_totp(user_id: Any) -> Iterator[Row]:
    for device in _rows(_model("django_otp.plugins.otp_totp", "TOTPDevice"), user_id):
        d: Any = device
        row = Row("django_otp.totp", str(d.pk), d.user_id, Kind.TOTP)
        if not d.confirmed:
            yield _skipped(row, "not confirmed")
            continue
        if d.t0:
            yield _unreadable(row, "t0 is not 0")
            continue
        try:
            seed = bytes.fromhex(d.key)
            importing.check_totp(seed, digits=d.digits, period=d.step)
        except (ValueError, UnreadableFactor):
            yield _unreadable(row, "key, digits or step")
            continue
        row.write = _totp_writer(row, seed, d.digits, d.step, d.last_t, d.name)
        yield row


def _totp_writer(
    row: Row, seed: bytes, digits: int, period: int, last_step: int | None, name: str
) -> Callable[[Any], object]:
    def write(user: Any) -> object:
        return importing.import_totp(
            user,
            source=row.source,
            source_id=row.source_id,
            seed=seed,
            digits=digits,
            period=period,
            last_step=last_step,
            name=name,
        )

    return write


def _codes_writer(row: Row, codes: list[str]) -> Callable[[Any], object]:
    def write(user: Any) -> object:
        return importing.import_recovery_codes(
            user, source=row.source, source_id=row.source_id, codes=codes
        )

    return write


def _phone_writer(row: Row, number: str, primary: str, name: str) -> Callable[[Any], object]:
    def write(user: Any) -> object:
        return importing.import_phone(
            user,
            source=row.source,
            source_id=row.source_id,
            number=number,
            primary=primary,
            name=name,
        )

    return write


def django_otp_static(user_id: Any) -> Iterator[Row]:
    for device in _rows(_model("django_otp.plugins.otp_static", "StaticDevice"), user_id):
        d: Any = device
        row = Row("django_otp.static", str(d.pk), d.user_id, Kind.RECOVERY_CODES)
        # django-otp deletes a token when it is used: those left are the unused ones.
        tokens = [str(t) for t in d.token_set.values_list("token", flat=True)]
        if not d.confirmed or not tokens:
            yield _skipped(row, "not confirmed" if not d.confirmed else "no tokens left")
            continue
        if not any(normalize_imported_code(t) for t in tokens):
            yield _unreadable(row, "token format")
            continue
        row.write = _codes_writer(row, tokens)
        yield row


def two_factor_phone(user_id: Any) -> Iterator[Row]:
    for device in _rows(_model("two_factor.plugins.phonenumber", "PhoneDevice"), user_id):
        d: Any = device
        row = Row("two_factor.phone", str(d.pk), d.user_id, Kind.PHONE)
        if not d.confirmed:
            yield _skipped(row, "not confirmed")
            continue
        number = str(getattr(d.number, "as_e164", "") or d.number or "")
        primary = Channel.VOICE.value if d.method == "call" else Channel.SMS.value
        try:
            importing.check_phone(number, primary)
        except UnreadableFactor as exc:
            yield _unreadable(row, f"{exc} not accepted here")
            continue

        row.write = _phone_writer(row, number, primary, str(d.name or ""))
        yield row


def allauth_mfa(user_id: Any) -> Iterator[Row]:
    model = _model("allauth.mfa", "Authenticator")
    if model is None:
        return
    mfa_settings: Any = importlib.import_module("allauth.mfa.app_settings")
    decrypt = importlib.import_module("allauth.mfa.utils").decrypt
    codes_class = importlib.import_module("allauth.mfa.recovery_codes.internal.auth").RecoveryCodes
    for authenticator in _rows(model, user_id, type__in=["totp", "recovery_codes"]):
        a: Any = authenticator
        if a.type == "totp":
            row = Row("allauth.totp", str(a.pk), a.user_id, Kind.TOTP)
            period, digits = int(mfa_settings.TOTP_PERIOD), int(mfa_settings.TOTP_DIGITS)
            try:
                seed = otp.b32decode(decrypt(a.data["secret"]))
                importing.check_totp(seed, digits=digits, period=period)
            except Exception:  # a site's adapter may raise anything
                yield _unreadable(row, "secret")
                continue
            # allauth keeps no last step; the step of the last use refuses that code here.
            last = int(a.last_used_at.timestamp()) // period if a.last_used_at else None
            row.write = _totp_writer(row, seed, digits, period, last, "")
            yield row
        else:
            row = Row("allauth.recovery_codes", str(a.pk), a.user_id, Kind.RECOVERY_CODES)
            try:
                codes = [str(c) for c in codes_class(a).get_unused_codes()]
            except Exception:  # as above
                yield _unreadable(row, "seed")
                continue
            if not codes:
                yield _skipped(row, "no codes left")
                continue
            row.write = _codes_writer(row, codes)
            yield row


READERS: dict[str, list[Callable[[Any], Iterator[Row]]]] = {
    "django_otp": [django_otp_totp, django_otp_static],
    "two_factor": [django_otp_totp, django_otp_static, two_factor_phone],
    "allauth": [allauth_mfa],
}
READERS["all"] = [*READERS["two_factor"], *READERS["allauth"]]
KINDS = (Kind.TOTP, Kind.PHONE, Kind.RECOVERY_CODES)
STATES = (READY, DONE, SKIPPED, UNREADABLE)


class Command(BaseCommand):
    help = (
        "Import authenticator apps, phones and backup codes from django-otp, "
        "django-two-factor-auth or django-allauth's mfa."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", choices=SOURCES, default="all")
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Import only this user's factors (repeatable).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be imported; write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_user_model()
        user_ids: list[Any] = [None]
        if options["user"]:
            user_ids = []
            for name in options["user"]:
                user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
                if user is None:
                    raise CommandError(f"No user named {name!r}.")
                user_ids.append(user.pk)
        rows: list[Row] = []
        seen: set[tuple[str, str]] = set()
        for user_id in user_ids:
            for reader in READERS[options["source"]]:
                for row in reader(user_id):
                    if (row.source, row.source_id) not in seen:
                        seen.add((row.source, row.source_id))
                        rows.append(row)
        for row in rows:
            if row.state == READY and importing.already_imported(row.source, row.source_id):
                row.state = DONE
        if not options["dry_run"]:
            self._write(rows)
        self._report(rows, dry_run=options["dry_run"])

    def _write(self, rows: list[Row]) -> None:
        by_user: dict[Any, list[Row]] = defaultdict(list)
        for row in rows:
            if row.state == READY:
                by_user[row.user_id].append(row)
        users = get_user_model()._default_manager.in_bulk(list(by_user))
        for user_id, pending in by_user.items():
            user = users[user_id]
            with transaction.atomic():  # all of a user's factors, or none
                for row in pending:
                    assert row.write is not None
                    try:
                        with transaction.atomic():
                            row.write(user)
                    except IntegrityError:  # a concurrent run imported it first
                        row.state = DONE
                    except UnreadableFactor as exc:
                        _unreadable(row, str(exc))

    def _report(self, rows: list[Row], *, dry_run: bool) -> None:
        counts: dict[str, dict[str, int]] = {k: dict.fromkeys(STATES, 0) for k in KINDS}
        for row in rows:
            counts[row.kind][row.state] += 1
        verb = "would import" if dry_run else "imported"
        for kind in KINDS:
            c = counts[kind]
            self.stdout.write(
                f"{kind}: {verb} {c[READY]}, already imported {c[DONE]}, "
                f"skipped {c[SKIPPED]}, unreadable {c[UNREADABLE]}"
            )
        for row in rows:
            if row.state in (SKIPPED, UNREADABLE):
                self.stdout.write(f"  {row.state}: {row.source} #{row.source_id} ({row.why})")
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
