"""Doctests: every example in tlcourse's docstrings runs, with ``tl`` and ``torch`` in scope.

Examples run on stand-in data in a temporary data directory, and with the exercise checks
lenient (some examples show a wrong answer being caught, which strict mode would raise on).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tlcourse as tl


@pytest.fixture(autouse=True)
def _doctest_setting(request: pytest.FixtureRequest, doctest_namespace: dict, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    if type(request.node).__name__ != "DoctestItem":
        return
    doctest_namespace.update(tl=tl, torch=torch)
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.delenv("TLCOURSE_CHECKS", raising=False)
