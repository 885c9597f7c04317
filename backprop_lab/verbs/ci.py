"""`autograde ci-grade`: grade the notebooks a pull request changes, the safe way.

The workflow checks the base branch out into BASE and installs the grader from there; it
checks the pull request out into HEAD and installs nothing from it. This command then
- refuses to run unless the grader it is running is BASE's (so a PR cannot grade itself
  with a grader it edited),
- grades only the `.ipynb` files under `assignments/` that HEAD changes, reading them from
  HEAD, in the kernel as always (the PR's notebooks are the only PR code that runs),
- flags every other change to the grader, reference, tests or workflows: they are not
  used, and a person should look,
- writes a Markdown summary (for `$GITHUB_STEP_SUMMARY`), `::error` annotations on the
  notebooks (most points first: GitHub shows ten per step) and one results.json per
  notebook for the artifact.
The notebooks' paths are the pull request's to choose: in the summary they are escaped
Markdown (markdown.py), in the annotations escaped as the runner reads them, and in the
artifact's folders safe names (submissions.safe_name), which an artifact accepts.
The YAML in `.github/workflows/` only wires this command.
"""

from __future__ import annotations

import filecmp
import json
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..gradebook.submissions import safe_name
from ..options import seed_words
from ..pipeline import GradeResult, GradingError, Options, grade
from ..plan.notebook import NotebookError
from ..report.annotations import annotation, exercise_line
from ..report.formats import check_line, markdown_report
from ..report.markdown import markdown_code, markdown_text
from ..report.records import feedback_text, record_from, unscored

__all__ = ["CiGrading", "changed_files", "ci_grade", "grader_mismatch"]

GRADED_PREFIX = "assignments/"
# Changes a student's pull request has no business making: not used, and flagged.
PROTECTED = ("backprop_lab/", "tests/", "solutions/", ".github/",
             ".ci/", "benchmarks/", "pyproject.toml", "constraints.txt",
             "nbgrader_config.py")  # fmt: skip
_SKIP_PARTS = {".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"}
MAX_ANNOTATIONS = 10  # GitHub shows ten per step


@dataclass(frozen=True)
class CiGrading:
    results: tuple[tuple[str, GradeResult | str], ...]  # path -> result, or why not graded
    flagged: tuple[str, ...]  # protected paths the PR changes
    summary: str  # Markdown
    annotations: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0: every changed notebook passed every check (or none changed); 1: some check
        failed; 2: some notebook could not be graded."""
        graded = [r for _, r in self.results if not isinstance(r, str)]
        if len(graded) < len(self.results):
            return 2
        return 1 if any(r.score.failed for r in graded) else 0


def _files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file()
        and not (_SKIP_PARTS & set(p.relative_to(root).parts))
        and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts)
    }


def changed_files(base: Path, head: Path) -> list[str]:
    """Paths (relative, '/'-separated) added, removed or modified from BASE to HEAD."""
    a, b = _files(base), _files(head)
    changed = set(a) ^ set(b)
    changed |= {p for p in set(a) & set(b) if not filecmp.cmp(a[p], b[p], shallow=False)}
    return sorted(changed)


def grader_mismatch(base: Path) -> list[str]:
    """The grader's files that differ between BASE and the grader running this command
    (empty when the running grader is BASE's)."""
    import backprop_lab

    mismatched = []
    init = backprop_lab.__file__
    assert init is not None, "backprop_lab is a regular package: it has a file"
    running = Path(init).parent
    name = running.name
    ours = {p.relative_to(running).as_posix(): p for p in running.rglob("*.py")}
    theirs = {p.relative_to(base / name).as_posix(): p for p in (base / name).rglob("*.py")}
    for rel in sorted(set(ours) | set(theirs)):
        same = rel in ours and rel in theirs and filecmp.cmp(ours[rel], theirs[rel], False)
        if not same:
            mismatched.append(f"{name}/{rel}")
    return mismatched


def _annotations(results, head: Path, flagged: tuple[str, ...]) -> list[str]:
    failures = []
    for rel, result in results:
        if isinstance(result, str):
            failures.append((99, annotation("error", rel, 1, "not graded", result)))
            continue
        for c in result.score.failed:
            message = feedback_text(c)
            title = f"{check_line(c)} ({c.score}/{c.max_score})"
            line = exercise_line(head / rel, c.exercise)
            failures.append((c.max_score, annotation("error", rel, line, title, message)))
    failures.sort(key=lambda f: -f[0])  # stable: notebook order within equal points
    lines = [a for _, a in failures]
    if flagged:
        lines.insert(
            0,
            annotation(
                "warning",
                flagged[0],
                1,
                "grader changes not used",
                f"This pull request changes {len(flagged)} file(s) outside assignments/ "
                f"({', '.join(flagged[:5])}{', ...' if len(flagged) > 5 else ''}): it was "
                "graded with the base branch's grader, and a person should review them.",
            ),
        )
    return lines[:MAX_ANNOTATIONS]


def _summary(results, flagged: tuple[str, ...], seed: int, device: str) -> str:
    lines = ["## autograde: pull request grading", ""]
    if flagged:
        lines += [
            "> [!WARNING]",
            "> This pull request also changes files outside `assignments/`. They were "
            "**not** used: the notebooks were graded with the base branch's grader.",
            ">",
            *(f"> - {markdown_code(p)}" for p in flagged),
            "",
        ]
    if not results:
        lines.append("No notebook under `assignments/` changed: nothing to grade.")
    for rel, result in results:
        if isinstance(result, str):
            # the reason names the file, and the file's name is the pull request's to choose
            why = markdown_text(result, one_line=True)
            lines += [f"### {markdown_text(rel, one_line=True)}: not graded", "", why, ""]
        else:
            lines += [markdown_code(rel), "", markdown_report(result)]
    lines.append(f"<sub>Graded with {seed_words(seed)} on {device}.</sub>")
    return "\n".join(lines) + "\n"


def _result_dir(out: Path, rel: str, taken: set[Path]) -> Path:
    """A folder of its own under `out` for the notebook `rel`: its path without `.ipynb`,
    each part a safe name (an artifact refuses `:`, `|`, line breaks and more), numbered
    where two paths make one."""
    parts = [safe_name(part) for part in rel.removesuffix(".ipynb").split("/")]
    dest, n = out.joinpath(*parts), 1
    while dest in taken:
        n += 1
        dest = out.joinpath(*parts[:-1], f"{parts[-1]}__{n}")
    taken.add(dest)
    return dest


def ci_grade(
    base: Path,
    head: Path,
    *,
    changed: list[str] | None = None,
    options: Options | None = None,
    out: Path | None = None,
) -> CiGrading:
    """Grade HEAD's changed notebooks with BASE's grader; see the module's docstring.
    Raises GradingError when the running grader is not BASE's."""
    options = options or Options()
    mismatch = grader_mismatch(base)
    if mismatch:
        raise GradingError(
            f"the grader running is not the base branch's ({len(mismatch)} file(s) differ, "
            f"e.g. {mismatch[0]}): install it from the base checkout, "
            f"`pip install -e {base}`, and run again"
        )
    changed = changed_files(base, head) if changed is None else sorted(set(changed))
    notebooks = [p for p in changed if p.startswith(GRADED_PREFIX) and p.endswith(".ipynb")]
    flagged = tuple(p for p in changed if p.startswith(PROTECTED))
    results: list[tuple[str, GradeResult | str]] = []
    taken: set[Path] = set()
    for rel in notebooks:
        path = head / rel
        if not path.exists():
            continue  # deleted by the PR: nothing to grade
        try:
            graded = grade(path, options)
            record = record_from(graded)
            result: GradeResult | str = graded
        except (NotebookError, GradingError) as exc:
            result = str(exc)
            status = "ungradeable" if isinstance(exc, NotebookError) else "error"
            record = unscored(result, status=status, grader_version=__version__)
        results.append((rel, result))
        if out is not None:
            dest = _result_dir(out, rel, taken) / "results.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(record.to_dict(), indent=2), encoding="utf-8")
            if not isinstance(result, str):  # the student's report, in the artifact
                from ..report.feedback import write_feedback

                write_feedback(result, dest.parent / "feedback.html", dest.parent / "feedback.md")
    summary = _summary(results, flagged, options.seed, options.device)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(summary, encoding="utf-8")
    return CiGrading(tuple(results), flagged, summary, tuple(_annotations(results, head, flagged)))
