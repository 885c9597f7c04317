"""What the kernel code keeps between the start cell and the harvest cell: the recorded
definitions and what the kernel had before the notebook ran, as plain data on one class.
"""

GRADER_FILE = "<autograder>"
_MISSING = object()


class CallTimeout(BaseException):
    """Raised by the per-call alarm; a BaseException so `except Exception` in student
    code cannot swallow it."""


class CellTimeout(BaseException):
    """Raised by the cell alarm in a notebook cell that runs past the cell limit. Raised
    inside the kernel, where the cell is running, rather than by interrupting the kernel
    from outside: the student's cell stops, the notebook goes on, and the grader's calls
    at the end still run."""


class _State:
    # Class attributes as module-level state: this code runs once per kernel.
    targets: tuple = ()
    # name -> list of (sha1 of the defining cell's source, object, position), in
    # definition order; position counts the cells run so far
    versions: dict = {}  # noqa: RUF012
    last: dict = {}  # noqa: RUF012
    ran: dict = {}  # noqa: RUF012  sha1 of a cell's source -> position it first ran at
    cell_timeout: float | None = None  # seconds a student's cell may run
    debugger_calls = 0  # left-over breakpoints the grader skipped
    facts: dict = {}  # noqa: RUF012  what a recipe noticed about the current call
    originals: dict = {}  # noqa: RUF012  torch's functions as the kernel started
    # what the kernel had before the notebook ran: threads (idents), signal handlers
    threads: tuple = ()
    modules: tuple = ()  # names in sys.modules (the kernel's own imports)
    handlers: dict = {}  # noqa: RUF012
    callbacks: dict = {}  # noqa: RUF012  IPython's own event callbacks


# What the harvest cell takes over from the start cell's `_State` (see `adopt`): data only.
_STATE_DATA = (
    "targets",
    "versions",
    "ran",
    "cell_timeout",
    "debugger_calls",
    "originals",
    "threads",
    "modules",
    "handlers",
    "callbacks",
)


def adopt(state: object) -> None:
    """Take the recorded data (never code) from the start cell's state. The harvest runs
    from a fresh copy of this source, so a notebook that replaced the grader's functions
    in its namespace (`__autograde__['harvest'] = ...`) does not get to run them."""
    for name in _STATE_DATA:
        value = getattr(state, name, None)
        expected = (
            (int, float, type(None)) if name == "cell_timeout" else type(getattr(_State, name))
        )
        if isinstance(value, expected):
            setattr(_State, name, value)
