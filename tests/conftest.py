"""Shared fixtures: tests never touch the network or the learner's data directory."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # no display in tests

import tlcourse as tl  # noqa: E402


@pytest.fixture(autouse=True)
def no_session_profile() -> object:
    """Every test starts and ends without a profile pinned by an earlier start(profile=...)."""
    tl.set_session_profile(profile=None)
    yield
    tl.set_session_profile(profile=None)


@pytest.fixture
def standin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins on, in a fresh temporary data directory, quick profile."""
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.setenv(tl.PROFILE_ENV, "quick")
    return tmp_path


@pytest.fixture
def real_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins off, in an empty temporary data directory."""
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.delenv(tl.STANDIN_ENV, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def small_standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small set of all three stand-ins, written once for the whole session."""
    root = tmp_path_factory.mktemp("standins")
    from tlcourse.standins import write_standin

    for name in ("mnist", "fashion_mnist", "cifar10"):
        write_standin(name, root, n_train=600, n_test=200, seed=0)
    return root


REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
