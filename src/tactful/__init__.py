"""tactful: sentiment-aware orchestration for customer support and growth.

ingest (events) -> detect -> remember (state) -> decide (policy) -> act (actions) -> learn
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str


def _version() -> str:
    """The installed distribution's version: pyproject.toml's ``version`` is the one source,
    read back from the package metadata pip wrote (importlib.metadata costs ~35 ms to
    import, hence only when asked for)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tactful")
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


def __getattr__(name: str) -> object:
    """``tactful.__version__`` (the installed metadata's), and ``tactful.Client`` and
    ``tactful.AsyncClient`` (tactful/client.py), computed or imported when first used, so
    ``import tactful`` stays light."""
    if name == "__version__":
        value = _version()
        globals()["__version__"] = value
        return value
    if name in ("Client", "AsyncClient"):
        from tactful import client

        return getattr(client, name)
    raise AttributeError(f"module 'tactful' has no attribute {name!r}")
