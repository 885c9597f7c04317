"""Grading checks as pytest tests: `pytest --pyargs autograder.grading --notebook NB`."""
