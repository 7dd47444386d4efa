"""A class's notebooks: student copies without solutions, and which checks each student's copy passes.

``write_student_copies`` drops every solution cell (tagged ``solution``) and every output;
prompts, answer cells and check cells stay, so a copy runs top to bottom and each check
says "No answer yet" until the student answers. Its code cells are exactly the course's
(solutions are markdown), so the course's own tests, which run every notebook, run the
copies' code too.

``collect_results`` reads the check cells of returned notebooks and tabulates, per
student and exercise, what each check said: correct, not yet, no answer yet, or not run.
With ``execute=True`` each notebook is first run again in a fresh kernel, so the table
shows what the checks say now, not what the saved file claims.

Example:
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x", metadata={"tags": ["solution"]})])
    >>> len(strip_solutions(nb).cells)
    0
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd

from .exercises.core import CHECKS_ENV
from .exercises.notebooks import SOLUTION_TAG, check_call

__all__ = ["strip_solutions", "write_student_copies", "check_statuses", "collect_results"]


def strip_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without solution cells and without outputs."""
    out = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    out.cells = [c for c in out.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def write_student_copies(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write solution-free copies of ``notebooks`` into ``out_dir``; return their paths.

    Example:
        >>> write_student_copies(sorted(Path("notebooks").glob("*.ipynb")), Path("student"))  # doctest: +SKIP
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out_dir / path.name
        nbformat.write(strip_solutions(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def check_statuses(nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{exercise: status}`` for each check cell of ``nb``, from its output ("not run" when it has none).

    The status is the one the check's result writes into its output's metadata
    (``CheckResult._repr_mimebundle_``), so no displayed text is parsed.

    Example:
        >>> from tlcourse.exercises.compare import CheckResult
        >>> data, metadata = CheckResult("3.1", False, "Hint")._repr_mimebundle_()
        >>> cell = nbformat.v4.new_code_cell('tl.check("3.1", x)')
        >>> cell.outputs = [nbformat.v4.new_output("execute_result", data, metadata=metadata)]
        >>> check_statuses(nbformat.v4.new_notebook(cells=[cell]))
        {'3.1': 'not yet'}
    """
    statuses = {}
    for cell in nb.cells:
        call = cell.cell_type == "code" and check_call(cell.source)
        if not call:
            continue
        shown = [meta["status"] for o in cell.get("outputs", [])
                 if (meta := o.get("metadata", {}).get("tlcourse")) and meta.get("exercise") == call[0]]
        statuses[call[0]] = shown[-1] if shown else "not run"
    return statuses


def _execute(nb: nbformat.NotebookNode, folder: Path, timeout: int) -> nbformat.NotebookNode:
    """Run ``nb`` in a fresh kernel with the learner's (lenient) checks; errors stop at the failing cell."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    previous = os.environ.get(CHECKS_ENV)
    os.environ[CHECKS_ENV] = "lenient"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    except CellExecutionError:
        pass  # the cells after the error are "not run"; the table says so
    finally:
        if previous is None:
            os.environ.pop(CHECKS_ENV, None)
        else:
            os.environ[CHECKS_ENV] = previous
    return nb


def collect_results(paths: list[Path], *, execute: bool = False, timeout: int = 1800) -> pd.DataFrame:
    """One row per returned notebook (its file name), one column per exercise: what its check said.

    Args:
        paths: the students' notebooks (student copies they answered and saved).
        execute: run each again first (in its own folder, with lenient checks) instead of
            trusting the outputs saved in the file.
        timeout: seconds allowed per cell when executing.
    """
    rows = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if execute:
            nb = _execute(nb, path.parent, timeout)
        rows[path.name] = check_statuses(nb)
    exercises = sorted({e for statuses in rows.values() for e in statuses}, key=lambda n: tuple(map(int, n.split("."))))
    return pd.DataFrame([[statuses.get(e, "no check cell") for e in exercises] for statuses in rows.values()],
                        index=list(rows), columns=exercises)
