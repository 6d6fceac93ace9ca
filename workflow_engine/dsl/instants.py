"""ISO 8601 instants as definitions and params write them (a trailing `Z` for UTC included)."""

from __future__ import annotations

from datetime import datetime


def parse_instant(text: str) -> datetime:
    """Read an ISO 8601 date or datetime, `Z` standing for UTC; the result may lack a timezone.

    Raises:
        ValueError: `text` is not ISO 8601.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
