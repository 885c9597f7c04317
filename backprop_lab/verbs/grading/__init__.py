"""Grading checks as pytest tests:
`pytest --pyargs backprop_lab.verbs.grading --autograde-notebook NB`."""
