"""Evaluation: the benchmark tasks and the reports that compare scorers on them."""
