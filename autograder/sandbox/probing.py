"""What this machine can do: which of the sandbox's layers it allows, asked once per
process, and the warning to print when student code is not fully isolated."""

from __future__ import annotations

from . import landlock, namespaces

_PROBED: dict | None = None


def probe() -> dict:
    """{"namespaces": bool, "landlock": ABI (0: none)}; tried once per process."""
    global _PROBED
    if _PROBED is None:
        _PROBED = {"namespaces": namespaces.work(), "landlock": landlock.abi()}
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
