"""tactful: sentiment-aware orchestration for customer support and growth.

ingest (events) -> detect -> remember (state) -> decide (policy) -> act (actions) -> learn
"""

__version__ = "0.1.0"
