"""Grading checks as pytest tests:
`pytest --pyargs autograder.verbs.grading --autograde-notebook NB`."""
