"""A class graded in parts: which part a submission is in (`grade --shard K/N`), and one
output folder from the parts' folders (`autograde merge`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..report.records import RESULTS, SUBMISSIONS, Record, copy_feedback, save, submission_dir

__all__ = ["in_shard", "merge_records"]


def in_shard(key: str, k: int, n: int) -> bool:
    """Is the submission `key` in part k (1-based) of n? A hash of the key, so a student
    lands in the same part on every run and every machine, whatever else is submitted."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: k must be between 1 and n")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def merge_records(dirs: list[Path], out: Path) -> tuple[Record, ...]:
    """Every results.json (and feedback report) under the `grade --shard` outputs `dirs`,
    gathered under `out` and signed with its key; the records, sorted by key. ValueError
    when two shards graded one submission differently."""
    records: dict[str, Record] = {}
    for d in map(Path, dirs):
        found = sorted((d / SUBMISSIONS).glob(f"*/*/{RESULTS}"))
        if not found and any(d.glob(f"*/*/{RESULTS}")):
            raise ValueError(
                f"{d} holds results.json files in the layout of an older grader (no "
                f"{SUBMISSIONS}/ folder): grade that part again with this one"
            )
        for path in found:
            record = Record.from_dict(json.loads(path.read_text(encoding="utf-8")))
            # where it lay, not what it says (and `save` refuses a key that is no safe path)
            key = path.parent.relative_to(d / SUBMISSIONS).as_posix()
            if key in records and records[key] != record:
                raise ValueError(f"{key} was graded in two shards with different results")
            copy_feedback(path.parent, submission_dir(out, key))  # reports go along
            records[key] = save(out, key, record)  # signed with this folder's key
    return tuple(records[k] for k in sorted(records))
