"""The SHA-256 of a model file: what a model card records at training and what loading
checks, so weights that are not the card's are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]


def file_sha256(path: Path) -> str:
    """The file's SHA-256, hex."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
