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
