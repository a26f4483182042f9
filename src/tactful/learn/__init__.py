"""Learn: outcomes and metrics. Outcomes, tuning and drift arrive with later issues."""

from tactful.learn.metrics import Metrics

__all__ = ["Metrics"]
