"""The API's JSON parser: DRF's, with nesting too deep to parse refused as a 400."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

__all__ = ["SafeJSONParser"]


class SafeJSONParser(JSONParser):
    """Deeply nested JSON (``[[[[...]]]]``) makes Python's parser raise ``RecursionError``,
    which DRF does not catch: answer it like any other unparsable body."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
