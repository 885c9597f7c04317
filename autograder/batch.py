"""`autograde grade`: grade every submission under some paths, several at once.

Each submission is graded by `pipeline.grade` in a worker process and leaves
`<out>/<student>/<assignment>/results.json` (written atomically) whatever happened: a
score, "could not be graded" with the reason, or a grader error. `grades.csv` and
`summary.md` are then built from all the records. Because the records are on disk, a
re-run (or a run after a crash or Ctrl-C) skips what is already graded with the same
notebook bytes, grader version, seed and device, and grades only the rest, trusting only
records that carry the output folder's own signature (an HMAC with a key kept beside them,
which no kernel can see), so a record planted or edited by anything else is graded again.
A kernel that dies is given one more try in a fresh sandbox, and so is a worker process
killed under its submission; a second failure is recorded for a person to look at.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from . import __version__, forkserver
from .engine import INPROCESS
from .exercises import ASSIGNMENTS, exercises_for
from .gradebook import summary_markdown, unscored_results, write_grades_csv
from .notebook import NotebookError
from .options import GradingError, Options, notebook_digest, which_engine
from .submissions import Submission, find_submissions

__all__ = ["BatchSummary", "grade_one", "grade_submissions", "in_shard", "merge"]

RESULTS = "results.json"
FEEDBACK = ("feedback.html", "feedback.md", "feedback_files")  # per graded submission


@dataclass(frozen=True)
class BatchSummary:
    out: Path
    records: tuple[dict[str, Any], ...]
    skipped: int  # already graded by an earlier run

    def count(self, status: str) -> int:
        return sum(r["extra_data"]["status"] == status for r in self.records)

    @property
    def exit_code(self) -> int:
        """0: every submission graded; 1: some could not be; 2: nothing to grade."""
        if not self.records:
            return 2
        return 0 if self.count("graded") == len(self.records) else 1


KEY_FILE = ".autograde-key"


def record_key(out: Path) -> bytes:
    """The secret `out`'s records are signed with, made on first use (readable by this
    user only; the kernels, in their sandboxes, never see the output folder)."""
    path = out / KEY_FILE
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # the first process to get here sets the key
        tmp.unlink()
    return path.read_bytes()


def _signature(record: dict[str, Any], key: bytes) -> str:
    meta = {k: v for k, v in record.get("extra_data", {}).items() if k != "signature"}
    body = json.dumps({**record, "extra_data": meta}, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _save(out: Path, key: str, record: dict[str, Any]) -> None:
    """Sign `record` with `out`'s key and write it as `out/key/results.json`."""
    record["extra_data"]["signature"] = _signature(record, record_key(out))
    _write_atomic(out / key / RESULTS, record)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers see the old file or the new one, never half of one


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(record, indent=2))


def _meta(sub: Submission, status: str, message: str, digest: str | None) -> dict[str, Any]:
    return {
        "student": sub.student,
        "key": sub.key,
        "notebook": str(sub.notebook) if sub.notebook else None,
        "status": status,
        "message": message,
        "notebook_sha256": digest,
    }


def _unscored(
    sub: Submission, options: Options, status: str, message: str, digest: str | None
) -> dict[str, Any]:
    """A record for a submission that got no score: zero points and the reason."""
    assignment = options.assignment or sub.assignment
    if assignment is None and sub.notebook is not None and sub.notebook.stem in ASSIGNMENTS:
        assignment = sub.notebook.stem  # the best guess left, so the row sorts with its kind
    try:
        max_score = sum(e.points for e in exercises_for(assignment)) if assignment else None
    except KeyError:
        max_score = None
    return unscored_results(message, {
        "assignment": assignment,
        "max_score": max_score,
        "grader_version": __version__,
        "seed": options.seed,
        "device": options.device,
        **_meta(sub, status, message, digest),
    })  # fmt: skip


def _reusable(out: Path, key: str, digest: str, options: Options) -> dict[str, Any] | None:
    """The earlier record of submission `key` if this grader wrote it (its signature) and
    it graded these exact bytes the same way."""
    try:
        record = json.loads((out / key / RESULTS).read_text(encoding="utf-8"))
        meta = record["extra_data"]
        signed = hmac.compare_digest(
            str(meta.get("signature", "")), _signature(record, record_key(out))
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    same = (
        signed
        and meta.get("notebook_sha256") == digest
        and meta.get("grader_version") == __version__
        and meta.get("seed") == options.seed
        and meta.get("device") == options.device
        # grader errors are worth another try; a student's outcome is deterministic
        and meta.get("status") in ("graded", "ungradeable")
    )
    return record if same else None


def _digest(sub: Submission) -> str | None:
    if sub.notebook is None:
        return None
    try:
        return notebook_digest(sub.notebook)
    except OSError:
        return None


def _write_feedback(result, folder: Path) -> None:
    from .feedback import write_feedback

    shutil.rmtree(folder / "feedback_files", ignore_errors=True)  # no stale pictures
    write_feedback(result, folder / "feedback.html", folder / "feedback.md")


def _copy_feedback(src: Path, dest: Path) -> None:
    for name in FEEDBACK:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
        elif (src / name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)


def _twin_record(
    record: dict[str, Any], first: Submission, twin: Submission, out: Path
) -> dict[str, Any]:
    """`first`'s record, for `twin` whose notebook has the same bytes."""
    text = json.dumps(record)
    if first.notebook is not None and twin.notebook is not None:
        # messages name the file they are about ("... is not valid notebook JSON")
        text = text.replace(
            json.dumps(str(first.notebook))[1:-1], json.dumps(str(twin.notebook))[1:-1]
        )
    copy = json.loads(text)
    meta = copy["extra_data"]
    meta.update(
        student=twin.student,
        key=twin.key,
        notebook=str(twin.notebook),
        identical_to=first.student,
    )
    _copy_feedback(out / first.key, out / twin.key)
    _save(out, twin.key, copy)
    return copy


def grade_one(
    sub: Submission, out: Path, options: Options, feedback: bool = True
) -> tuple[dict[str, Any], bool]:
    """Grade one submission, write its results.json (and, for a graded one, its feedback
    report), return (record, skipped). Never raises for anything about the submission:
    every outcome is a record."""
    dest = out / sub.key / RESULTS
    if sub.notebook is None:
        record = _unscored(sub, options, "ungradeable", sub.problem or "", None)
        _save(out, sub.key, record)
        return record, False
    try:
        digest = notebook_digest(sub.notebook)
    except OSError as exc:
        record = _unscored(sub, options, "ungradeable", f"cannot read the notebook: {exc}", None)
        _save(out, sub.key, record)
        return record, False
    previous = _reusable(out, sub.key, digest, options)
    if previous is not None:  # also checked by the caller; the file may have changed since
        return previous, True
    # Here, not at the top: the pipeline imports torch, which the process that only hands
    # submissions to workers never needs.
    from .pipeline import grade
    from .report import gradescope_results

    cpu = time.process_time()
    try:
        options = replace(options, assignment=options.assignment or sub.assignment)
        result = grade(sub.notebook, options, **_runner())
        status = "graded"
        if result.kernel_died:
            # Something may have killed it from outside: one more try, in a fresh sandbox,
            # before the student's own code is taken to be the cause.
            result = grade(sub.notebook, options, **_runner())
            status = "review" if result.kernel_died else "graded"
        record = gradescope_results(result)
        notes = "; ".join(result.score.notes)
        if status == "review":
            why = (
                "The kernel died twice while running this notebook (its own code may exit or "
                "crash it): the score counts what ran before, and a person should look."
            )
            record["output"] = f"{why}\n{record['output']}"
            notes = f"{why} {notes}".strip()
        record["extra_data"].update(_meta(sub, status, notes, digest))
        timings = dict(result.timings)
        if feedback:  # before results.json: a recorded submission has its report
            t = time.perf_counter()
            try:
                _write_feedback(result, dest.parent)
                record["extra_data"]["feedback"] = FEEDBACK[0]  # beside results.json
            except Exception as exc:  # a report that fails to draw must not cost the score
                problem = f"the feedback report could not be written ({type(exc).__name__}: {exc})"
                record["extra_data"]["feedback_error"] = problem
            timings["report"] = time.perf_counter() - t
        # where the time went, for the instructor (and benchmarks/): this process's own CPU
        # (grading, comparing, drawing), the notebook's run in its own process apart
        timings["grader cpu"] = time.process_time() - cpu
        record["extra_data"]["timings"] = {k: round(v, 4) for k, v in timings.items()}
    except NotebookError as exc:
        record = _unscored(sub, options, "ungradeable", str(exc), digest)
    except GradingError as exc:
        record = _unscored(sub, options, "error", str(exc), digest)
    except Exception as exc:  # a grader bug must not cost the rest of the class
        message = (
            f"the grader failed on this notebook ({type(exc).__name__}: {exc}); this is not "
            "the student's doing: run `autograde grade` again, and report it if it repeats"
        )
        record = _unscored(sub, options, "error", message, digest)
    _save(out, sub.key, record)
    return record, False


# Where this process's kernels come from: the socket of the batch's fork server (see
# forkserver.py), or None to start each kernel from scratch.
_KERNEL_SERVER: Path | None = None
# In the process that started it: (socket, pid) of that server, which workers wait for.
_KERNEL_SERVER_STARTING: tuple[Path, int] | None = None


def _runner() -> dict[str, Any]:
    """Where this worker's notebooks run: the batch's fork server, for either engine (a
    server that has gone is not used: `grade` then starts what it needs itself)."""
    if _KERNEL_SERVER is None or not _KERNEL_SERVER.exists():
        return {}
    return {"server": _KERNEL_SERVER,
            "kernel_spec_manager": forkserver.kernel_spec_manager(_KERNEL_SERVER)}  # fmt: skip


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _thread_env(threads: int) -> dict[str, str]:
    return {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _init_worker(threads: int, kernel_server: tuple[Path, int] | None) -> None:
    global _KERNEL_SERVER
    _KERNEL_SERVER = None
    if kernel_server is not None and forkserver.wait_until_ready(*kernel_server):
        _KERNEL_SERVER = kernel_server[0]
    # Inherited by each notebook's kernel: N kernels each using every core would slow
    # all of them down.
    os.environ.update(_thread_env(threads))
    import torch

    torch.set_num_threads(threads)


def _crashed(
    sub: Submission, out: Path, options: Options, why: str, status: str = "error"
) -> dict[str, Any]:
    message = (
        f"the grading process crashed on this notebook ({why}); a person should look: "
        "run `autograde grade` again, and report it if it repeats"
    )
    digest = None
    if sub.notebook is not None:
        with contextlib.suppress(OSError):
            digest = notebook_digest(sub.notebook)
    record = _unscored(sub, options, status, message, digest)
    _save(out, sub.key, record)
    return record


def _worker_context():
    """Workers forked from multiprocessing's fork server, which has imported the grader
    (torch included) and done nothing else: no inherited threads, event loop or grading
    state, and no second of imports per worker. Spawned where there is no fork server."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    preload = ("pipeline", "report", "feedback", "pictures")
    context.set_forkserver_preload([__name__, *(f"autograder.{m}" for m in preload)])
    return context


def _run_pool(
    subs: list[Submission],
    out: Path,
    options: Options,
    workers: int,
    done: Callable[[Submission, dict[str, Any], bool], None],
    restart: Callable[[], None],
    feedback: bool,
) -> list[Submission]:
    """Grade `subs` in worker processes; return those whose worker died under them."""
    broken: list[Submission] = []
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=(_threads(workers), _KERNEL_SERVER_STARTING),
    ) as pool:
        futures: dict[Future, Submission] = {
            pool.submit(grade_one, s, out, options, feedback): s for s in subs
        }
        try:
            for future in as_completed(futures):
                sub = futures[future]
                try:
                    record, skipped = future.result()
                except BrokenProcessPool:
                    broken.append(sub)
                    continue
                except Exception as exc:  # pickling or the like: still one submission's
                    record, skipped = _crashed(sub, out, options, repr(exc)), False
                restart()
                done(sub, record, skipped)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return broken


def grade_submissions(
    paths: list[Path],
    out: Path,
    *,
    options: Options | None = None,
    workers: int = 1,
    progress: bool = True,
    console=None,
    shard: tuple[int, int] | None = None,
    feedback: bool = True,
) -> BatchSummary:
    """Grade everything under `paths` into `out`; see the module's docstring. With
    `shard=(k, n)`, only the k-th of n stable parts of the class (see `in_shard`)."""
    options = options or Options()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or Console(stderr=True, highlight=False, markup=False)
    subs = find_submissions(paths)
    if shard is not None:
        subs = [s for s in subs if in_shard(s.key, *shard)]
    if not subs:
        console.print(
            f"autograde: no notebooks found under {', '.join(map(str, paths))}: expected "
            ".ipynb files, folders with one sub-folder per student, or nbgrader's submitted/"
        )
        return BatchSummary(out, (), 0)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    skipped = 0
    started = time.perf_counter()
    bar = Progress(
        TextColumn("Grading", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}", markup=False),
        console=console,
        disable=not progress,
        transient=False,
    )

    twins: dict[str, list[Submission]] = {}  # representative's key -> same bytes

    def done(sub: Submission, record: dict[str, Any], was_skipped: bool) -> None:
        nonlocal skipped
        records[sub.key] = record
        skipped += was_skipped
        meta = record["extra_data"]
        what = "already graded" if was_skipped else meta["status"]
        bar.update(task, advance=1, description=f"{sub.student}: {record['score']} ({what})")
        for twin in twins.pop(sub.key, []):
            if meta["status"] == "error":  # the grader failed, not the bytes: try again
                done(twin, *grade_one(twin, out, options, feedback))
            else:
                done(twin, _twin_record(record, sub, twin, out), False)

    try:
        with bar:
            task = bar.add_task("", total=len(subs))
            todo, first_with = [], {}
            for sub in subs:  # in this process: no worker needs to start to skip
                digest = _digest(sub)
                previous = None if digest is None else _reusable(out, sub.key, digest, options)
                if previous is not None:
                    done(sub, previous, True)
                    continue
                # Grading is a function of the bytes (and the options): identical notebooks,
                # like untouched or shared ones, are graded once and recorded for each.
                if digest is not None and digest in first_with:
                    twins.setdefault(first_with[digest].key, []).append(sub)
                    continue
                if digest is not None:
                    first_with[digest] = sub
                todo.append(sub)
            workers = max(1, min(workers, len(todo)))
            inprocess = which_engine(options) == INPROCESS
            wanted = (inprocess or options.fork_kernels) and bool(todo)
            with _fork_server(wanted, _threads(workers), kernels=not inprocess) as restart:
                if workers == 1:
                    if _KERNEL_SERVER_STARTING is not None:
                        forkserver.wait_until_ready(*_KERNEL_SERVER_STARTING)
                    for sub in todo:
                        restart()
                        done(sub, *grade_one(sub, out, options, feedback))
                else:
                    broken = _run_pool(todo, out, options, workers, done, restart, feedback)
                    # A dead worker takes the pool down with it. Re-grade those submissions
                    # one per pool, so the one that kills its worker costs only itself.
                    for sub in broken:
                        left = _run_pool([sub], out, options, 1, done, restart, feedback)
                        if left:
                            why = "its worker process died twice"
                            done(sub, _crashed(sub, out, options, why, "review"), False)
    except KeyboardInterrupt:
        console.print(
            f"Interrupted after {len(records)} of {len(subs)} submissions; their results are "
            f"in {out}. Run the same command again to grade the rest."
        )
        raise
    ordered = tuple(records[s.key] for s in subs if s.key in records)
    # Written here, after every kernel of the batch is gone (each died with its sandbox).
    write_grades_csv(ordered, out / "grades.csv")
    write_text_atomic(out / "summary.md", summary_markdown(ordered))
    summary = BatchSummary(out, ordered, skipped)
    _print_summary(console, summary, len(subs), time.perf_counter() - started)
    return summary


@contextlib.contextmanager
def _fork_server(wanted: bool, threads: int, kernels: bool):
    """One fork server for the whole batch, shared by every worker; yields a function
    that starts it again (same socket) if something killed it. Kernels start the
    ordinary way while it is down, or when it is not wanted or not available."""
    global _KERNEL_SERVER, _KERNEL_SERVER_STARTING
    env = {**os.environ, **_thread_env(threads)}
    # Not waited for here: it imports while the workers start, which wait for it.
    server = forkserver.start(env=env, wait=False, kernels=kernels) if wanted else None
    if server is None:
        yield lambda: None
        return
    folder = server.folder

    def restart() -> None:
        nonlocal server
        if server is None or not server.alive():
            if server is not None:
                server.close(remove=False)
            server = forkserver.start(folder, env=env, kernels=kernels)

    _KERNEL_SERVER_STARTING = (server.socket_path, server.process.pid)
    _KERNEL_SERVER = server.socket_path
    try:
        yield restart
    finally:
        _KERNEL_SERVER = _KERNEL_SERVER_STARTING = None
        if server is not None:
            server.close(remove=False)
        shutil.rmtree(folder, ignore_errors=True)


def in_shard(key: str, k: int, n: int) -> bool:
    """Is the submission `key` in part k (1-based) of n? A hash of the key, so a student
    lands in the same part on every run and every machine, whatever else is submitted."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: k must be between 1 and n")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def merge(dirs: list[Path], out: Path) -> BatchSummary:
    """One class from the outputs of several `grade --shard` runs: every results.json (and
    feedback report) is gathered under `out`, and grades.csv and summary.md are written
    from all of them."""
    records: dict[str, dict[str, Any]] = {}
    for d in dirs:
        for path in sorted(Path(d).glob(f"*/*/{RESULTS}")):
            record = json.loads(path.read_text(encoding="utf-8"))
            key = record.get("extra_data", {}).get("key") or path.parent.relative_to(d).as_posix()
            if key in records and records[key] != record:
                raise ValueError(f"{key} was graded in two shards with different results")
            records[key] = record
            _copy_feedback(path.parent, out / key)  # the reports travel with the records
            _save(out, key, record)  # signed with this folder's key
    ordered = tuple(records[k] for k in sorted(records))
    out.mkdir(parents=True, exist_ok=True)
    write_grades_csv(ordered, out / "grades.csv")
    write_text_atomic(out / "summary.md", summary_markdown(ordered))
    return BatchSummary(out, ordered, 0)


def _print_summary(console, summary: BatchSummary, total: int, seconds: float) -> None:
    graded = summary.count("graded")
    unchanged = (
        f" ({summary.skipped} unchanged since an earlier run, not graded again)"
        if summary.skipped
        else ""
    )
    console.print(
        f"{total} submissions{unchanged} in {seconds:.1f} s: {graded} graded, "
        + (f"{summary.count('review')} need a person, " if summary.count("review") else "")
        + f"{summary.count('ungradeable')} could not be graded, "
        f"{summary.count('error')} grader errors."
    )
    for r in summary.records:
        meta = r["extra_data"]
        if meta["status"] != "graded":
            console.print(f"  {meta['student']} ({meta['status']}): {meta['message']}")
    graded_now = [r["extra_data"] for r in summary.records if r["extra_data"]["status"] == "graded"]
    spent = [meta["timings"] for meta in graded_now if meta.get("timings")]
    if spent:

        def median(key: str) -> float:
            return statistics.median(t.get(key, 0.0) for t in spent)

        console.print(
            f"Per graded submission (medians): the notebook's run {median('execute'):.2f} s "
            f"(its cells {median('notebook cells'):.2f} s, the grader's calls "
            f"{median('grader calls'):.2f} s); the grader's own CPU {median('grader cpu'):.2f} s."
        )
    console.print(f"Grades: {summary.out / 'grades.csv'}; summary: {summary.out / 'summary.md'}")
