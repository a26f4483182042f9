"""Instants: timezone-aware datetimes, held in UTC.

Every timestamp tactful keeps (event time, state windows, trends) is validated as aware and
converted to ``datetime.UTC``. Besides one clock for everything, it is about speed: pydantic
parses offsets into its own tzinfo type, and comparing or subtracting datetimes whose
tzinfo objects differ calls ``utcoffset()`` on each (~0.5 µs); with the one UTC singleton
it is a plain field comparison (~0.05 µs). The detectors and trends do thousands of these
per batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

__all__ = ["Instant"]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 at +01:00: left as is for the range checks to refuse
        return value


Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
