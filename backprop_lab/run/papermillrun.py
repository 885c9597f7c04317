"""Papermill over a notebook held in memory, with an nbclient engine that keeps hold of
the notebook it executes (per thread), so that the cells that ran before a kernel died or
a limit struck can still be reported, without papermill writing the whole notebook to
disk twice a cell (which cost more CPU than the student's code)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from nbformat import NotebookNode

RECORDING = "autograde-recording"  # the engine's name in papermill's registry
_RUNNING = threading.local()


def execute(nb: NotebookNode, *, parameters: dict[str, Any], kernel_name: str,
            engine_name: str, **engine_kwargs: Any) -> NotebookNode:  # fmt: skip
    """`papermill.execute_notebook` for a notebook in memory, less what grading does not
    use and pays for on every submission: papermill serialises the notebook to JSON and
    parses it back to load it, and serialises it once more at the end to write it
    nowhere (a fifth of the grader's CPU per submission, measured), and it adds Markdown
    cells that point at errors, which the grader finds itself. The rest is papermill's own:
    the parameters cell, its metadata, the engine API."""
    from papermill.engines import papermill_engines
    from papermill.parameterize import parameterize_notebook

    nb.metadata["papermill"] = {"default_parameters": {}, "parameters": {},
                                "environment_variables": {}}  # fmt: skip
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata.setdefault("papermill", {})
    if parameters:
        nb = parameterize_notebook(nb, parameters, kernel_name=kernel_name, language="python",
                                   engine_name=engine_name)  # fmt: skip
    return papermill_engines.execute_notebook_with_engine(
        engine_name, nb, input_path=None, output_path=None, kernel_name=kernel_name,
        progress_bar=False, log_output=False, **engine_kwargs,
    )  # fmt: skip


def remember(nb: NotebookNode | None) -> None:
    """Hold `nb` as this thread's notebook being executed (None: let it go)."""
    _RUNNING.nb = nb


def last_notebook() -> NotebookNode | None:
    """The notebook this thread was executing, as far as it got."""
    return getattr(_RUNNING, "nb", None)


@functools.cache
def register_recording() -> str:
    """Register the recording engine with papermill (once per process); its name."""
    from papermill.engines import NBClientEngine, papermill_engines

    class RecordingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            remember(nb_man.nb)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(RECORDING, RecordingEngine)
    return RECORDING


def timeouts(cell_timeout: float, tagged_timeout: float, tag: str) -> Callable[[Any], int]:
    """nbclient's timeout for each cell: `tagged_timeout` for cells tagged `tag`."""

    def timeout(cell: NotebookNode) -> int:
        tagged = tag in cell.get("metadata", {}).get("tags", [])
        return int(tagged_timeout if tagged else cell_timeout) + 1

    return timeout
