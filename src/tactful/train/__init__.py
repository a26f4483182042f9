"""Training: reproduce the shipped models from ../shared/data."""
