"""A finished figure as PNG bytes, the same bytes for the same picture."""

from __future__ import annotations

from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = BytesIO()
    # No "Software"/date metadata: the same arrays give the same bytes.
    # No bbox_inches="tight": constrained layout already fits the figure, and "tight"
    # draws it twice (half the time of a picture).
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
