"""Grading checks as pytest tests:
`pytest --pyargs autograder.grading --autograde-notebook NB`."""
