"""MkDocs hook: the settings reference is generated from ``otp_auth/conf.py`` (its
``DEFAULTS``, ``RATE_LIMIT_DEFAULTS`` and each setting's docstring), so it cannot drift.

``{{ settings_table }}`` and ``{{ rate_limits_table }}`` in a page are replaced by the
tables.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

CONF = Path(__file__).resolve().parents[2] / "otp_auth" / "conf.py"


def _literal(tree: ast.Module, name: str) -> dict[str, Any]:
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return {
                ast.literal_eval(k): ast.unparse(v)
                for k, v in zip(node.value.keys, node.value.values, strict=True)  # type: ignore[attr-defined]
            }
    raise LookupError(name)


def _docstrings(tree: ast.Module) -> dict[str, str]:
    docs = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "AppSettings":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    doc = ast.get_docstring(item)
                    if doc:
                        docs[item.name] = " ".join(inspect.cleandoc(doc).split())
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    tree = ast.parse(CONF.read_text())
    defaults = _literal(tree, "DEFAULTS")
    docs = _docstrings(tree)
    rows = ["| Key | Default | Meaning |", "| --- | --- | --- |"]
    for key in sorted(defaults):
        meaning = docs.get(key, "")
        rows.append(f"| `{key}` | `{_cell(defaults[key])}` | {_cell(meaning)} |")
    return "\n".join(rows)


def rate_limits_table() -> str:
    tree = ast.parse(CONF.read_text())
    limits = _literal(tree, "RATE_LIMIT_DEFAULTS")
    rows = ["| `RATE_LIMITS` key | Default |", "| --- | --- |"]
    rows += [f"| `{key}` | `{_cell(value)}` |" for key, value in limits.items()]
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if "{{ settings_table }}" in markdown:
        markdown = markdown.replace("{{ settings_table }}", settings_table())
    if "{{ rate_limits_table }}" in markdown:
        markdown = markdown.replace("{{ rate_limits_table }}", rate_limits_table())
    return markdown


def on_page_read_source(page: Any, config: Any) -> str | None:
    """The changelog page is the repository's ``CHANGELOG.md``."""
    if page.file.src_uri == "changelog.md":
        return (CONF.parents[1] / "CHANGELOG.md").read_text()
    return None
