"""Learn: outcomes (learn/outcomes.py) and metrics (learn/metrics.py). Tuning and drift
arrive with later issues."""
