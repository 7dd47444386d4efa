"""nbval's run of each notebook, handed to the website build of the same test session.

`make test` executes every notebook with nbval (every exercise proved three ways inside
that run) and then builds the website, which would execute every notebook again. Instead,
the root conftest records each cell's outputs as nbval runs it (``record``), and before
the build ``stage`` puts every notebook that ran through without a failure into the
book's jupyter-cache, exactly as myst-nb caches a notebook it executed itself (jupyter-cache
matches a notebook by its code, so the build uses these outputs and executes only what
is missing). A notebook whose run failed, or that shows an ipywidgets widget (nbval keeps
no widget state; myst-nb's own run does), is left to the build to execute.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

_OUTPUTS: dict[Path, dict[str, list]] = {}  # notebook -> cell id -> outputs nbval saw
_SECONDS: dict[Path, float] = {}
_FAILED: set[Path] = set()
_WIDGET = "application/vnd.jupyter.widget-view+json"


def record(notebook: Path, cell_id: str, outputs: list | None, *, passed: bool, seconds: float) -> None:
    """Keep what one cell printed (called for each nbval cell, after it ran)."""
    _OUTPUTS.setdefault(notebook, {})[cell_id] = copy.deepcopy(outputs or [])
    _SECONDS[notebook] = _SECONDS.get(notebook, 0.0) + seconds
    if not passed:
        _FAILED.add(notebook)


def executed(notebook: Path) -> nbformat.NotebookNode | None:
    """The notebook with the outputs of nbval's run, or ``None`` if it cannot stand for a build's run."""
    nb = nbformat.read(notebook, as_version=4)
    outputs = _OUTPUTS.get(notebook, {})
    code = [c for c in nb.cells if c.cell_type == "code"]
    if notebook in _FAILED or not code or any(c.id not in outputs for c in code):
        return None
    for count, cell in enumerate(code, start=1):
        cell.outputs = [nbformat.from_dict(o) for o in outputs[cell.id]]
        cell.execution_count = count
        for o in cell.outputs:
            if o.get("output_type") == "execute_result":
                o["execution_count"] = count
        if any(_WIDGET in o.get("data", {}) for o in cell.outputs):
            return None
    return nb


def stage(cache_dir: Path) -> list[str]:
    """Put every notebook nbval ran through into the jupyter-cache at ``cache_dir``; return their names."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_dir))
    staged = []
    for notebook in sorted(_OUTPUTS):
        nb = executed(notebook)
        if nb is None:
            continue
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(notebook), data={"execution_seconds": _SECONDS[notebook]}),
                                    check_validity=False, overwrite=True)
        staged.append(notebook.name)
    return staged
