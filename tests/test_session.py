"""The notebook opening cell: profile, device, seed, and the stand-in notice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tlcourse as tl


def test_start_reports_profile_device_and_seed(real_env: Path) -> None:
    run = tl.start(seed=3, profile="quick", show=False)
    assert (run.profile.name, run.device, run.seed, run.standins) == ("quick", torch.device("cpu"), 3, False)
    text = repr(run)
    assert "profile: quick" in text and "seed: 3" in text and "STAND-IN" not in text
    a = torch.rand(2)
    tl.start(seed=3, profile="quick", show=False)
    assert torch.equal(a, torch.rand(2))  # start seeds the global generators


def test_standins_are_announced_in_text_and_html(standin_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tl.start(seed=0, show=False)
    assert run.standins and run.profile.name == "quick"
    assert "STAND-IN DATA" in repr(run) and "not MNIST" in repr(run)
    assert "Stand-in data" in run._repr_html_()
    assert tl.dataset_title("cifar10") == "CIFAR-10 (stand-in)"


def test_dataset_title_on_real_data(real_env: Path) -> None:
    assert tl.dataset_title("fashion_mnist") == "Fashion-MNIST"


def test_start_displays_itself(standin_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tl.start(seed=0)  # outside a notebook, IPython's display prints the text form
    assert "STAND-IN DATA" in capsys.readouterr().out


def test_figures_show_in_a_kernel_started_with_agg(standin_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI systems often export MPLBACKEND=Agg; the notebooks (and the website) must still show figures."""
    import nbclient
    import nbformat

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nimport tlcourse as tl\nrun = tl.start(seed=0)"),
        nbformat.v4.new_code_cell("for i in range(1):\n    fig, ax = plt.subplots()\n    ax.plot([0, 1])"),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    shown = [o for o in nb.cells[1].outputs if "image/png" in o.get("data", {})]
    assert shown, "a figure drawn in a loop did not appear under its cell"
