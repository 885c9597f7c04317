"""The grader for backprop-lab's notebooks (execution, comparison, scoring, reports)."""

import sys

__version__ = "0.1.0"

# jsonschema, imported by nbformat in every grading process, imports the optional
# `rfc3987_syntax` when it is installed, only to check the "iri" string format, which
# notebook schemas do not use; building its grammar takes about 0.9 s per process. Mark it
# absent (unless something imported it already), as if it were not installed.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
