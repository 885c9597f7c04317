"""What this machine can do: which of the sandbox's layers it allows, asked once per
process, and the warning to print when student code is not fully isolated."""

from __future__ import annotations

import os

from . import landlock, namespaces

_PROBED: dict | None = None
# Another kind of machine, simulated on this one by taking layers away (never adding):
# "namespaces=0", "landlock=4" (an older ABI), or both, comma-separated. For the tests of
# each machine kind (tests/test_sandbox_modes.py) and for trying a course on one.
SIMULATE = "AUTOGRADE_SANDBOX_SIMULATE"


def probe() -> dict:
    """{"namespaces": bool, "landlock": ABI (0: none)}; tried once per process."""
    global _PROBED
    if _PROBED is None:
        found = {"namespaces": namespaces.work(), "landlock": landlock.abi()}
        for part in filter(None, os.environ.get(SIMULATE, "").split(",")):
            name, _, value = part.partition("=")
            if name == "namespaces" and value == "0":
                found["namespaces"] = False
            elif name == "landlock" and value.isdigit():
                found["landlock"] = min(found["landlock"], int(value))
            else:
                raise ValueError(f"{SIMULATE}: {part!r} is not namespaces=0 or landlock=N")
        _PROBED = found
    return _PROBED


def describe(found: dict | None = None) -> str | None:
    """None when student code is isolated here; otherwise the warning to print."""
    found = found or probe()
    if found["namespaces"] and found["landlock"]:
        return None
    if found["namespaces"] or found["landlock"]:
        have = "namespaces" if found["namespaces"] else f"Landlock ABI {found['landlock']}"
        return (f"student code is only partly isolated on this machine ({have} only): "
                "grade untrusted submissions on Linux with user namespaces and Landlock, "
                "or in a container")  # fmt: skip
    return ("student code is not isolated on this machine: grade untrusted submissions on "
            "Linux or in a container")  # fmt: skip
