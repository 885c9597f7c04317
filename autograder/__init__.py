"""The grader for backprop-lab's notebooks (execution, comparison, scoring, reports)."""

__version__ = "0.1.0"
