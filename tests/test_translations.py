"""Shipped catalogs are complete, and every string a user can read is marked.

A catalog in ``otp_auth/locale/<lang>/LC_MESSAGES/django.po`` is "shipped": it must hold
every msgid of the sources (``make messages`` adds new ones), none untranslated or fuzzy,
with the same placeholders as the English (``msgfmt --check``), and its compiled ``.mo``
must be current. Templates must not show text outside ``{% translate %}`` /
``{% blocktranslate %}``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "otp_auth"
LOCALE = PACKAGE / "locale"
CATALOGS = sorted(LOCALE.glob("*/LC_MESSAGES/django.po"))
TEMPLATES = PACKAGE / "templates"
# Words that are the same in every language, or not words at all.
NOT_TEXT = re.compile(r"^[\s·:()\[\].,!?—–\-/|•0-9]*$")
MSGFMT = shutil.which("msgfmt")


def _ids(po: Path) -> set[str]:
    """msgids (with context) of a catalog, header excluded."""
    text = po.read_text()
    ids = set()
    for block in text.split("\n\n"):
        ctx = re.search(r'^msgctxt "(.*)"', block, re.M)
        match = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        if not match:
            continue
        msgid = "".join(re.findall(r'"(.*)"', match.group(1)))
        if msgid:
            ids.add(f"{ctx.group(1)}\x04{msgid}" if ctx else msgid)
    return ids


needs_msgfmt = pytest.mark.skipif(MSGFMT is None, reason="gettext's msgfmt is not installed")


@pytest.mark.gettext
@needs_msgfmt
@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.parent.parent.name)
def test_a_shipped_catalog_has_no_untranslated_or_fuzzy_message(po: Path) -> None:
    result = subprocess.run(
        [str(MSGFMT), "--check", "--statistics", "-o", "/dev/null", str(po)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    stats = result.stderr
    assert "fuzzy" not in stats and "untranslated" not in stats, stats


@pytest.mark.gettext
@needs_msgfmt
@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.parent.parent.name)
def test_a_shipped_catalog_is_compiled(po: Path, tmp_path: Path) -> None:
    """The shipped ``.mo`` is what the ``.po`` compiles to now (not judged by file times,
    which a checkout sets at random)."""
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: run make messages"
    fresh = tmp_path / "django.mo"
    subprocess.run([str(MSGFMT), "-o", str(fresh), str(po)], check=True)
    assert fresh.read_bytes() == mo.read_bytes(), f"{mo} is stale: run make messages"


@pytest.fixture(scope="module")
def source_ids(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """What ``makemessages`` finds in the sources today, in a copy of the package."""
    from django.core.management import call_command

    copy = tmp_path_factory.mktemp("catalog") / "otp_auth"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    import os

    here = os.getcwd()
    os.chdir(copy)
    try:
        call_command(
            "makemessages", locale=["xx"], verbosity=0, no_wrap=True, ignore_patterns=["static/*"]
        )
    finally:
        os.chdir(here)
    return _ids(copy / "locale" / "xx" / "LC_MESSAGES" / "django.po")


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.parent.parent.name)
def test_a_shipped_catalog_holds_every_message_of_the_sources(po: Path, source_ids) -> None:
    missing = source_ids - _ids(po)
    assert not missing, f"{len(missing)} new messages: run make messages, then translate"


def _visible_text(template: str) -> list[str]:
    """Text of a template that would reach the page untranslated."""
    text = re.sub(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", "", template, flags=re.S)
    text = re.sub(r"\{%\s*blocktranslate.*?\{%\s*endblocktranslate\s*%\}", "", text, flags=re.S)
    text = re.sub(r"\{%\s*block main_class\s*%\}.*?\{%\s*endblock\s*%\}", "", text)
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    text = re.sub(r"\{%.*?%\}", "", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.S)
    found = []
    for attr in re.findall(r'(?:aria-label|title|placeholder|alt)="([^"]*)"', text):
        if not NOT_TEXT.match(attr):
            found.append(attr)
    text = re.sub(r"<script.*?</script>|<style.*?</style>", "", text, flags=re.S)
    text = re.sub(r"<[^>]*>", "\n", text)
    text = re.sub(r"&[a-z]+;|&#\d+;", "", text)
    found += [line.strip() for line in text.splitlines() if not NOT_TEXT.match(line)]
    return found


PAGES = [p for p in TEMPLATES.rglob("*") if p.suffix in (".html", ".txt") and p.is_file()]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_every_visible_template_string_is_marked(path: Path) -> None:
    assert _visible_text(path.read_text()) == []


def test_the_visible_text_check_finds_unmarked_text() -> None:
    assert _visible_text("<p>Hello</p>") == ["Hello"]
    assert _visible_text('<button aria-label="Close">x</button>') == ["Close", "x"]
    assert _visible_text("<p>{% translate 'Hello' %} · {{ name }}</p>") == []


def test_every_promised_language_ships_a_catalog() -> None:
    """The languages the docs promise: none may go missing (an empty list would make the
    checks above check nothing)."""
    shipped = {po.parent.parent.name for po in CATALOGS}
    assert shipped >= {"fr", "es", "pt_BR", "de", "ar"}
