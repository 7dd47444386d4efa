"""The website build reuses nbval's run: a notebook's recorded outputs go into the jupyter-cache it reads."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

from tests import nbval_runs


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("_OUTPUTS", "_SECONDS"):
        monkeypatch.setattr(nbval_runs, name, {})
    monkeypatch.setattr(nbval_runs, "_FAILED", set())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("print(1)"),
                                         nbformat.v4.new_code_cell("2")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    return path


def _run(path: Path, *, passed: bool = True) -> None:
    first, second = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    nbval_runs.record(path, first.id, [nbformat.v4.new_output("stream", name="stdout", text="1\n")], passed=True,
                      seconds=0.5)
    nbval_runs.record(path, second.id, [nbformat.v4.new_output("execute_result", {"text/plain": "2"})],
                      passed=passed, seconds=0.25)


def test_a_notebook_nbval_ran_is_found_by_its_code_with_its_outputs(notebook: Path, tmp_path: Path) -> None:
    _run(notebook)
    assert nbval_runs.stage(tmp_path / "cache") == ["t.ipynb"]
    cache = get_cache(str(tmp_path / "cache"))
    record = cache.match_cache_notebook(nbformat.read(notebook, as_version=4))  # what myst-nb does
    assert record.data == {"execution_seconds": 0.75}
    _, merged = cache.merge_match_into_notebook(nbformat.read(notebook, as_version=4))
    outputs = [c.outputs for c in merged.cells if c.cell_type == "code"]
    assert outputs[0][0]["text"] == "1\n" and outputs[1][0]["data"] == {"text/plain": "2"}


def test_a_failed_partial_or_widget_run_is_left_to_the_build(notebook: Path, tmp_path: Path) -> None:
    _run(notebook, passed=False)
    assert nbval_runs.stage(tmp_path / "a") == []
    nbval_runs._FAILED.clear()
    nbval_runs._OUTPUTS[notebook].popitem()  # a cell that did not run
    assert nbval_runs.stage(tmp_path / "b") == []
    _run(notebook)
    first = next(iter(nbval_runs._OUTPUTS[notebook]))
    nbval_runs._OUTPUTS[notebook][first] = [nbformat.v4.new_output(
        "display_data", {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "w"})]
    assert nbval_runs.stage(tmp_path / "c") == []
