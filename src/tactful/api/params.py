"""Checks on request parameters shared by the API's modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException

__all__ = ["ERRORS_CONTENT", "aware", "in_range"]

# The body of an error the API answers with ({"errors": [{"field", "value", "why"}]}), for
# the OpenAPI spec's responses.
ERRORS_CONTENT: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "value", "why"],
                        "properties": {
                            "field": {"type": "string"},
                            "value": {},
                            "why": {"type": "string"},
                        },
                    },
                }
            },
        }
    }
}

# Times outside this range are typos or probes; date arithmetic on them would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def in_range(value: datetime) -> bool:
    """Whether ``value`` (timezone-aware) lies between 1970 and 9000."""
    try:
        return EARLIEST <= value.astimezone(UTC) <= LATEST - timedelta(days=1)
    except (OverflowError, ValueError):
        return False


def aware(name: str, value: datetime | None) -> datetime | None:
    """A query time with a timezone, between 1970 and 9000; else 422 saying so."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(422, f"{name}: needs a timezone, e.g. 2026-11-01T00:00:00Z")
    if not in_range(value):
        raise HTTPException(422, f"{name}: {value.isoformat()} is outside 1970-9000")
    return value
