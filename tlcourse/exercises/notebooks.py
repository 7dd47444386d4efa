"""Where an exercise lives in its chapter's notebook: prompt, placeholder, solution and check cells.

A chapter's exercise takes four cells, in this order (the tests hold every notebook to it):

1. the prompt, a markdown cell tagged ``exercise``: a ``{exercise}`` box (sphinx-exercise)
   labelled ``ex-3-1``, whose title gives the number, the stars and the kind of task;
2. the answer cell, a code cell that sets the learner's variable to ``None``
   (a *predict* exercise: the guess, then the cell that shows the truth);
3. the solution, a markdown cell tagged ``solution``: a ``{solution}`` dropdown with the
   code in a python block. Markdown never runs, so Run All cannot overwrite an answer;
   JupyterLab shows it collapsed, the website behind "Show the solution";
4. the check, one line: ``tl.check("3.1", conv1_params)``.

Example:
    >>> check_call('tl.check("3.1", conv1_params)')
    ('3.1', 'conv1_params')
    >>> check_call('tl.check("3.1", 10 * 25 + 10)') is None  # a check cell names a variable, nothing else
    True
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import nbformat

from ..files import repo_dir
from .core import exercise_label

__all__ = ["EXERCISE_TAG", "SOLUTION_TAG", "check_call", "solution_of", "code_blocks", "chapter_notebook",
           "solution_code"]

EXERCISE_TAG = "exercise"
SOLUTION_TAG = "solution"
_CHECK = re.compile(r'tl\.check\("(\d+\.\d+)", ([A-Za-z_]\w*)\)')
_SOLUTION = re.compile(r":::\{solution\} ex-(\d+)-(\d+)\b")
_PYTHON = re.compile(r"```python\n(.*?)```", re.S)


def check_call(source: str) -> tuple[str, str] | None:
    """``(exercise, variable)`` when ``source`` is exactly one check call, else ``None``."""
    match = _CHECK.fullmatch(source.strip())
    return (match[1], match[2]) if match else None


def solution_of(source: str) -> str | None:
    """The exercise number a solution cell's markdown answers (``"3.1"``), or ``None``."""
    match = _SOLUTION.match(source.strip())
    return f"{match[1]}.{match[2]}" if match else None


def code_blocks(markdown: str) -> str:
    """The python code blocks of a markdown cell, joined: the code of a solution."""
    return "\n".join(block.rstrip() for block in _PYTHON.findall(markdown)) + "\n"


def chapter_notebook(chapter: int, folder: Path | None = None) -> Path:
    """The notebook of ``chapter`` (``notebooks/03_*.ipynb``)."""
    folder = folder or repo_dir("notebooks")
    found = sorted(folder.glob(f"{chapter:02d}_*.ipynb"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one notebook for chapter {chapter} in {folder}, found {len(found)}")
    return found[0]


@lru_cache(maxsize=None)
def _solutions(path: Path, mtime: float) -> dict[str, str]:
    nb = nbformat.read(path, as_version=4)
    return {number: code_blocks(c.source) for c in nb.cells
            if c.cell_type == "markdown" and (number := solution_of(c.source))}


def solution_code(exercise_id: str) -> str:
    """The code of exercise ``exercise_id``'s solution, read from its chapter's notebook.

    Example:
        >>> "fc1_inputs_36" in solution_code("3.1")
        True
    """
    path = chapter_notebook(int(exercise_id.split(".")[0]))
    solutions = _solutions(path, path.stat().st_mtime)
    if exercise_id not in solutions:
        raise LookupError(f"{path.name} has no solution cell for exercise {exercise_id} "
                          f"(a markdown cell opening with ':::{{solution}} {exercise_label(exercise_id)}')")
    return solutions[exercise_id]
