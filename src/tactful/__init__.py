"""tactful: sentiment-aware orchestration for customer support and growth.

ingest (events) -> detect -> remember (state) -> decide (policy) -> act (actions) -> learn
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``tactful.Client`` and ``tactful.AsyncClient`` (tactful/client.py), imported when
    first used, so ``import tactful`` stays light."""
    if name in ("Client", "AsyncClient"):
        from tactful import client

        return getattr(client, name)
    raise AttributeError(f"module 'tactful' has no attribute {name!r}")
