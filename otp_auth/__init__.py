"""Two-factor login for Django with one-time codes."""

from __future__ import annotations

__version__ = "0.1.0"
