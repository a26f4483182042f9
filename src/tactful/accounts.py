"""Ingest, accounts: who each company is to the business, from a CRM export.

An accounts file (CSV with a header row, or JSON Lines) gives each account's context:
``account_id`` (required), ``name``, ``tier``, ``value`` (plan value, a number),
``lifecycle``, ``owner`` (the account manager: a Slack handle or an email) and
``tenure_days``; any other column is kept as a free-form trait. The same fields arrive
with identify/group events; the file is for what a CRM knows before the first event.

Reading is all or nothing: every problem is reported as (line, field, value, why) and
nothing is imported while any remain.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tactful.state.customer import AccountContext, with_traits

__all__ = ["AccountRowError", "read_accounts"]

MAX_ID = 128


@dataclass(frozen=True, slots=True)
class AccountRowError:
    line: int
    field: str
    value: Any
    why: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}={self.value!r}: {self.why}"


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line, row, error) for each row; JSON Lines if the suffix says so, else CSV."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, None, f"not JSON: {exc.msg} at column {exc.colno}"
                    continue
                if not isinstance(row, dict):
                    yield n, None, f"expected an object, got {type(row).__name__}"
                    continue
                yield n, row, None
        return
    with path.open(encoding="utf-8-sig", newline="") as f:  # Excel writes a BOM
        reader = csv.DictReader(f)
        for row in reader:
            # empty cells are absent values, not empty strings
            yield reader.line_num, {k: v for k, v in row.items() if k and v not in ("", None)}, None


def _number(value: Any, integer: bool) -> float | int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip().replace(",", "")
        return int(value) if integer else float(value)
    if integer and isinstance(value, int):
        return value
    if not integer and isinstance(value, int | float):
        return float(value)
    raise ValueError


def _context(
    line: int, row: dict[str, Any]
) -> tuple[str | None, AccountContext | None, list[AccountRowError]]:
    errors: list[AccountRowError] = []
    account_id = row.pop("account_id", None)
    if not isinstance(account_id, str | int) or not str(account_id).strip():
        errors.append(
            AccountRowError(line, "account_id", account_id, "missing; every row needs one")
        )
        account_id = None
    elif len(str(account_id)) > MAX_ID:
        errors.append(AccountRowError(line, "account_id", account_id, f"longer than {MAX_ID}"))
    traits: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("value", "tenure_days"):
            try:
                number = _number(value, integer=key == "tenure_days")
            except (ValueError, TypeError):
                kind = "a whole number of days" if key == "tenure_days" else "a number"
                errors.append(AccountRowError(line, key, value, f"must be {kind}"))
                continue
            if number < 0 or number != number or number in (float("inf"), float("-inf")):
                errors.append(AccountRowError(line, key, value, "must be a finite number >= 0"))
                continue
            traits[key] = number
        elif key in ("name", "tier", "lifecycle", "owner"):
            if not isinstance(value, str):
                errors.append(AccountRowError(line, key, value, "must be a string"))
                continue
            traits["account_name" if key == "name" else key] = value.strip()
        elif value is not None:
            traits[key] = value
    if errors or account_id is None:
        return None, None, errors
    return str(account_id).strip(), with_traits(AccountContext(), traits), []


def read_accounts(path: Path) -> tuple[dict[str, AccountContext], list[AccountRowError]]:
    """Every account in ``path`` (a later row for the same id wins), and every problem."""
    accounts: dict[str, AccountContext] = {}
    errors: list[AccountRowError] = []
    for line, row, problem in _rows(path):
        if problem is not None or row is None:
            errors.append(AccountRowError(line, "row", None, problem or "unreadable"))
            continue
        account_id, context, row_errors = _context(line, row)
        errors.extend(row_errors)
        if account_id is not None and context is not None:
            accounts[account_id] = context
    return accounts, errors
