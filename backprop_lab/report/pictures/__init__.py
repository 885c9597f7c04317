"""Pictures for feedback reports, as PNG bytes: a heat map of a wrong gradient
(heatmap.py), the matmul speed ladder (ladder.py) and fit's loss curve (curve.py).

Pure functions: numpy arrays and numbers in, PNG bytes out. Only matplotlib's object API is
used (Figure + the Agg canvas, never pyplot), so nothing touches matplotlib's global state
and the functions are safe to call from a grader that is doing other things. Importing
matplotlib costs about a second, which is why nothing imports this package until a report
is actually written.
"""

from .curve import curve_png
from .heatmap import heatmap_png, ratio_map, ratio_summary
from .ladder import (
    REFERENCE_COLOUR,
    STUDENT_COLOUR,
    TORCH_LABEL,
    Bar,
    ladder_png,
    ratio_label,
    time_label,
)

__all__ = [
    "REFERENCE_COLOUR",
    "STUDENT_COLOUR",
    "TORCH_LABEL",
    "Bar",
    "curve_png",
    "heatmap_png",
    "ladder_png",
    "ratio_label",
    "ratio_map",
    "ratio_summary",
    "time_label",
]
