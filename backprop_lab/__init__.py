"""The grader for backprop-lab's notebooks, in subpackages by layer, in the order data
flows: `course` (what is graded: the families and the table), `plan` (from a submission
to what runs), `run` (executing it, isolated), `judge` (results to points), `report` (a
grade for each reader), `gradebook` (a class), `verbs` (the command and the pytest form).
`kernel` is the code that runs inside the student's notebook; `pipeline` joins the layers
into one grading, with the `options` every front end shares. tests/test_layout.py holds
the flow: no module imports from a later layer, and there is no import cycle."""

import sys

__version__ = "0.1.0"

# jsonschema, imported by nbformat in every grading process, imports the optional
# `rfc3987_syntax` when it is installed, only to check the "iri" string format, which
# notebook schemas do not use; building its grammar takes about 0.9 s per process. Mark it
# absent (unless something imported it already), as if it were not installed.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
