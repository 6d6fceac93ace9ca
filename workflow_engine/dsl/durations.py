"""Durations of the DSL: `500ms`, `30s`, `5m`, `2h`, `7d` or ISO 8601, validated into a positive timedelta."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_SHORT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_duration(value: Any) -> Any:
    """Turn `500ms`/`30s`/`5m`/`2h`/`7d` into a timedelta; leave ISO 8601 to pydantic."""
    if isinstance(value, bool) or isinstance(value, int | float):
        raise ValueError("a duration must be a string such as 30s, 5m, 2h, 7d or PT30S")
    if isinstance(value, str):
        match = _SHORT_DURATION.match(value)
        if match:
            try:
                return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
            except OverflowError:
                raise ValueError(f"duration {value!r} is too large") from None
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"invalid duration {value!r}; use 500ms, 30s, 5m, 2h, 7d or PT30S")
    return value


def _positive(value: timedelta) -> timedelta:
    """Reject zero and negative durations."""
    if value <= timedelta(0):
        raise ValueError("a duration must be greater than zero")
    return value


DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d)|P.+)$"
Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_positive),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "description": "500ms, 30s, 5m, 2h, 7d or ISO 8601 (PT30S)"}
    ),
]
