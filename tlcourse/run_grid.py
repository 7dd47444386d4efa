"""A grid of runs saved after each one and resumed when rerun: what the chapters' experiments share.

``run_grid`` runs each planned combination (an arm × budget × seed, say) that its results
file does not hold yet, and rewrites the file atomically after each run: an interruption
loses at most the run in progress, and rerunning the cell continues where it stopped.
The file is named after a fingerprint of everything that made the runs (data, weights,
settings); a file with another fingerprint is refused, never overwritten.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid.json"
    >>> square = lambda n: {"n": n, "square": n * n}
    >>> [r["square"] for r in run_grid([(2,), (3,)], square, key=lambda r: (r["n"],), fingerprint="f", path=path)]
    [4, 9]
    >>> run_grid([(3,)], lambda n: 1 / 0, key=lambda r: (r["n"],), fingerprint="f", path=path)[-1]  # not rerun
    {'n': 3, 'square': 9}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .files import atomic_write_text

__all__ = ["run_grid"]


def run_grid(plan: Sequence[tuple], run: Callable[..., dict[str, Any]], *, key: Callable[[dict[str, Any]], tuple],
             fingerprint: str, path: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """The planned runs, each computed once: ``run(*combination)`` for those ``path`` does not hold yet.

    Args:
        plan: the combinations to run, each a tuple of ``run``'s arguments.
        run: computes one run; returns a JSON-serialisable row.
        key: a row → the combination that made it (as it reads back from JSON, so lists are tuples).
        fingerprint: names what made the runs; the file records it and must match.
        path: the results file (made if missing).
        progress: show a progress bar.

    Returns:
        the rows of the planned combinations, in the plan's order.

    Raises:
        ValueError: ``path`` holds runs made with another fingerprint; nothing is run or written.
    """
    path = Path(path)
    runs: list[dict[str, Any]] = []
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("fingerprint") != fingerprint:
            raise ValueError(f"{path} holds runs of other settings or data (fingerprint {saved.get('fingerprint')}, "
                             f"now {fingerprint}): pass another path, or move that file away; nothing was run.")
        runs = saved["runs"]
    done = {key(r): r for r in runs}
    todo = [c for c in plan if tuple(c) not in done]
    for combination in tqdm(todo, desc="runs", leave=False, disable=not progress or not todo):
        row = run(*combination)
        runs.append(row)
        done[key(row)] = row
        atomic_write_text(path, json.dumps({"fingerprint": fingerprint, "runs": runs}, indent=1))
    return [done[tuple(c)] for c in plan]
