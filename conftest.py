"""Test set-up shared by the doctests and nbval.

- Doctests: every example in tlcourse's docstrings runs, with ``tl`` and ``torch`` in scope,
  on stand-in data in a temporary data directory, and with the exercise checks lenient (strict
  mode would prove each exercise against its chapter's notebook, which a docstring is not).
- nbval: the notebooks are committed without outputs, so the cells tagged
  ``nbval-check-output`` get their expected outputs from ``tests/notebook_outputs.json``
  (recorded by ``tests/record_notebook_outputs.py``) and nbval compares them exactly. They
  were recorded in `make test`'s setting (quick profile, real data offline, a CIFAR-10
  stand-in), so they are checked only in that setting.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

import tlcourse as tl
from tests import nbval_runs
from tests.record_notebook_outputs import MARKER, REFERENCE, SETTING, is_marked, warnings_in  # one definition each


@pytest.fixture(autouse=True)
def _doctest_setting(request: pytest.FixtureRequest, doctest_namespace: dict, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    if type(request.node).__name__ != "DoctestItem":
        return
    doctest_namespace.update(tl=tl, torch=torch)
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    monkeypatch.delenv("TLCOURSE_CHECKS", raising=False)


def _reference_setting() -> bool:
    return all(os.environ.get(name) == value for name, value in SETTING.items())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the website's tests last (after nbval's runs, which they reuse); give nbval the recorded outputs."""
    import nbformat

    builds = [i for i in items if "built_book" in getattr(i, "fixturenames", ())]
    for item in builds:
        item.add_marker("book")  # `make unit` leaves them out
    after = {i for i in items if {"built_book", "nbval_session"} & set(getattr(i, "fixturenames", ()))}
    items.sort(key=lambda i: i in after)  # stable: the tests of nbval's run and the website move to the end

    marked = [i for i in items if type(i).__name__ == "IPyNbCell" and is_marked(i.cell)]
    if not marked or not _reference_setting():
        return
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    for item in marked:
        notebook = Path(str(item.fspath)).stem
        outputs = reference.get(notebook, {}).get(item.cell.id)
        if outputs is None:
            raise pytest.UsageError(
                f"{notebook}, cell {item.cell.id}, is tagged {MARKER} but {REFERENCE.name} has no outputs for it: "
                f"run `make outputs` and review the diff of tests/{REFERENCE.name}")
        item.cell.outputs = [nbformat.from_dict(o) for o in outputs]
        item.cell.execution_count = 1  # nbval compares only cells that were run


# A warning printed by a notebook cell (pandas' FutureWarning, a deprecation) shows on the
# website under the cell, and a check that says "Correct" in an untouched notebook would tell
# a learner who ran everything that an exercise they never did is done. nbval runs every cell
# anyway: fail the cell that printed either.
_CORRECT = re.compile(r"Exercise \d+\.\d+: Correct")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each notebook cell's outputs from nbval's run, for the website build (tests/nbval_runs.py)."""
    report = yield
    if type(item).__name__ == "IPyNbCell" and report.when == "call":
        nbval_runs.record(Path(str(item.fspath)), item.cell.id, getattr(item, "test_outputs", None),
                          passed=report.passed, seconds=call.duration)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if type(item).__name__ == "IPyNbCell":
        outputs = getattr(item, "test_outputs", None) or []
        found = warnings_in(outputs)
        if found:
            pytest.fail(f"{Path(str(item.fspath)).name}, cell {item.cell.id}, printed a warning "
                        f"(it would show on the website):\n" + "\n".join(found), pytrace=False)
        if any(_CORRECT.search(json.dumps(o)) for o in outputs):
            pytest.fail(f"{Path(str(item.fspath)).name}, cell {item.cell.id}, says an exercise is correct in a "
                        "notebook nobody answered", pytrace=False)
    return result
