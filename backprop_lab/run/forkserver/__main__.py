"""`python -m backprop_lab.run.forkserver SOCKET [--kernels]`: the fork server's process (see
`start`), serving until the grader that started it has gone."""

import os
import sys

from .serve import serve

if __name__ == "__main__":
    serve(sys.argv[1], kernels="--kernels" in sys.argv[2:])
    # Nothing left to do: skip the interpreter's tear-down of torch (most of a second).
    sys.stdout.flush()
    os._exit(0)
