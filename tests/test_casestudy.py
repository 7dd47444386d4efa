"""The case study: command-line arguments, results file, source checkpoints, arms, wording of results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tlcourse as tl
from tlcourse import casestudy
from tlcourse.__main__ import main as tlcourse_main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def case_env(standin_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins in a temporary data directory, and temporary checkpoint and results directories."""
    monkeypatch.setenv(tl.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    monkeypatch.setenv(tl.RESULTS_ENV, str(tmp_path / "results"))
    return tmp_path


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        casestudy.main(argv)
    return info.value.code


# --- arguments ---

def test_bad_profile_is_a_usage_error(case_env: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        tlcourse_main(["casestudy", "--profile", "huge"])  # through the dispatcher, as `python -m tlcourse`
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--profile" in err and "invalid choice: 'huge'" in err and "quick" in err


@pytest.mark.parametrize("budgets, message", [
    ("ten", "whole numbers"),
    ("10,2.5", "whole numbers"),
    ("0", "must be positive"),
    ("-5", "must be positive"),
    ("100000", "more than the training data has"),
])
def test_bad_budget_is_a_usage_error(case_env: Path, capsys: pytest.CaptureFixture, budgets: str, message: str) -> None:
    assert _exit_code(["--profile", "quick", f"--budgets={budgets}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "--seeds must be whole numbers"),
    (["--arms", "scratch,imagenet"], "unknown arm"),
])
def test_bad_seeds_and_arms_are_usage_errors(case_env: Path, capsys: pytest.CaptureFixture, argv: list[str],
                                             message: str) -> None:
    assert _exit_code(["--profile", "quick", *argv]) == 2
    assert message in capsys.readouterr().err


def test_command_line_exits_2_without_a_traceback(case_env: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tlcourse", "casestudy", "--budgets", "abc"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: --budgets must be whole numbers" in proc.stderr and "Traceback" not in proc.stderr


# --- the results file ---

def test_results_json_schema(case_env: Path, capsys: pytest.CaptureFixture) -> None:
    out = case_env / "out"
    argv = ["--profile", "quick", "--budgets", "5,all", "--seeds", "0", "--arms", "scratch,finetune",
            "--out", str(out), "--quiet"]
    assert casestudy.main(argv) == 0
    assert {"results.json", "accuracy_vs_labels.png", "source_history.png"} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == tl.RESULTS_SCHEMA and set(results) == {"schema", "metadata", "runs"}
    meta = results["metadata"]
    profile = tl.get_profile("quick")
    assert meta["profile"] == "quick" and meta["standins"] is True and meta["device"] == "cpu"
    assert meta["torch"] == torch.__version__ and meta["arms"] == ["scratch", "finetune"]
    assert meta["budgets"] == [5, "all"] and meta["seeds"] == [0]
    assert meta["profile_fields"]["train_size"] == profile.train_size
    assert set(meta["timings"]) == {"source_s", "target_s", "total_s"}
    assert all(isinstance(v, float) and v >= 0 for v in meta["timings"].values())
    assert meta["source"]["input"] == "3x32x32" and 0 <= meta["source"]["test_acc"] <= 1
    runs = results["runs"]
    assert len(runs) == 2 * 2 * 1
    assert {(r["arm"], r["budget"]) for r in runs} == {(a, b) for a in ("scratch", "finetune") for b in (5, "all")}
    for r in runs:
        assert set(r) == {"arm", "budget", "labels", "seed", "test_acc", "train_acc", "epochs", "steps", "seconds"}
        assert 0.0 <= r["test_acc"] <= 1.0 and r["seed"] == 0 and r["seconds"] > 0
        assert r["steps"] >= tl.CaseStudySettings.for_profile(profile).min_steps
        assert r["labels"] == (50 if r["budget"] == 5 else meta["train_images"])
    assert tl.find_results(profile, out / "results.json", arms=["scratch", "finetune"]) == results
    assert "wrote" in capsys.readouterr().out


def test_default_output_is_found_for_the_same_profile_and_data(case_env: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tl.get_profile("quick")
    assert tl.find_results(profile) is None
    assert casestudy.main(["--profile", "quick", "--budgets", "5", "--seeds", "0", "--arms", "scratch", "--quiet"]) == 0
    path = tl.default_results_path(profile)
    assert path.parent.name == "casestudy-quick-standin" and path.is_file()
    assert tl.find_results(profile, arms=["scratch"])["runs"][0]["arm"] == "scratch"
    assert tl.find_results(profile) is None  # the notebook needs every arm
    assert tl.find_results(tl.get_profile("quick", seeds=(0, 1, 2)), arms=["scratch"]) is None  # another profile
    monkeypatch.delenv(tl.STANDIN_ENV)
    assert tl.find_results(profile, arms=["scratch"]) is None  # real data now: stand-in results do not count


# --- the source model's checkpoint ---

def test_checkpoint_name_says_profile_shape_and_data(case_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = tl.get_profile("quick")
    standin = tl.source_checkpoint_path(quick, in_channels=3, image_size=32)
    monkeypatch.delenv(tl.STANDIN_ENV)
    real = tl.source_checkpoint_path(quick, in_channels=3, image_size=32)
    assert standin != real and "standin" in standin.name and "real" in real.name
    assert standin.parent == real.parent == case_env / "checkpoints"
    assert tl.source_checkpoint_path(quick, in_channels=1, image_size=28) != real
    assert tl.source_checkpoint_path(tl.get_profile("cpu"), in_channels=3, image_size=32) != real


def test_source_model_loads_instead_of_training_the_second_time(case_env: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tl.get_profile("quick", train_size=300)
    path = case_env / "src.pt"
    fits: list[int] = []
    real_fit = casestudy.fit

    def counting_fit(*args, **kwargs):  # noqa: ANN002, ANN003
        fits.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(casestudy, "fit", counting_fit)
    first, h1 = tl.source_model(profile, "cpu", in_channels=1, image_size=28, path=path, verbose=False)
    assert len(fits) == 1 and path.is_file()
    second, h2 = tl.source_model(profile, "cpu", in_channels=1, image_size=28, path=path, verbose=False)
    assert len(fits) == 1, "the second call trained again instead of loading"
    assert h2 == h1
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k
    tl.source_model(profile, "cpu", in_channels=1, image_size=28, path=path, retrain=True, verbose=False)
    assert len(fits) == 2
    tl.source_model(tl.get_profile("quick", train_size=200), "cpu", in_channels=1, image_size=28, path=path,
                    verbose=False)
    assert len(fits) == 3, "a checkpoint made with another profile was reused"
    path.write_bytes(b"not a checkpoint")
    tl.source_model(tl.get_profile("quick", train_size=200), "cpu", in_channels=1, image_size=28, path=path,
                    verbose=False)
    assert len(fits) == 4


def test_a_stand_in_source_is_never_reused_on_real_data(case_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tl.get_profile("quick", train_size=200)
    path = case_env / "src.pt"
    tl.source_model(profile, "cpu", in_channels=1, image_size=28, path=path, verbose=False)
    monkeypatch.delenv(tl.STANDIN_ENV)

    class WouldTrain(Exception):
        pass

    def no_real_data(*args, **kwargs):  # noqa: ANN002, ANN003
        raise WouldTrain

    monkeypatch.setattr(casestudy, "digit_tensors", no_real_data)  # never download in tests
    with pytest.raises(WouldTrain):
        tl.source_model(profile, "cpu", in_channels=1, image_size=28, path=path, verbose=False)


# --- arms and results ---

def test_arms_copy_the_source_but_not_its_head_and_freeze_the_features() -> None:
    source = tl.LeNet(in_channels=3, image_size=32)
    scratch, report = tl.build_arm("scratch", source, seed=0)
    assert report is None and not torch.equal(scratch.conv1.weight, source.conv1.weight)
    for arm in ("finetune", "frozen"):
        model, report = tl.build_arm(arm, source, seed=0)
        assert report.skipped == ["fc2.weight", "fc2.bias"]
        for name in ("conv1", "conv2", "fc1"):
            assert torch.equal(getattr(model, name).weight, getattr(source, name).weight)
        assert not torch.equal(model.fc2.weight, source.fc2.weight)
    frozen, _ = tl.build_arm("frozen", source)
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                                           "fc2.bias"]
    with pytest.raises(ValueError, match="Unknown arm"):
        tl.build_arm("imagenet", source)


def test_run_arm_trains_at_least_min_steps_and_evaluates_on_the_test_set() -> None:
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(200) % 10
    test = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(50) % 10
    profile = tl.get_profile("quick", target_epochs=2)
    settings = tl.CaseStudySettings(min_steps=6)
    row = tl.run_arm("frozen", tl.LeNet(in_channels=3, image_size=32), train, test, budget=3, seed=1,
                     profile=profile, device="cpu", settings=settings)
    assert row["labels"] == 30 and row["budget"] == 3 and row["steps"] == 6 and row["epochs"] == 6.0
    assert row["test_acc"] in {k / 50 for k in range(51)}


def _fake_results(values: dict[tuple[str, str], list[float]]) -> dict:
    runs = [{"arm": arm, "budget": budget if budget == "all" else int(budget), "labels": 10, "seed": s,
             "test_acc": acc} for (arm, budget), accs in values.items() for s, acc in enumerate(accs)]
    return {"schema": tl.RESULTS_SCHEMA, "metadata": {"profile": "quick"}, "runs": runs}


def test_comparisons_are_worded_from_the_numbers() -> None:
    results = _fake_results({("scratch", "10"): [0.20, 0.22, 0.24], ("finetune", "10"): [0.30, 0.31, 0.32],
                             ("scratch", "all"): [0.50, 0.55, 0.60], ("finetune", "all"): [0.52, 0.53, 0.60]})
    few, full = tl.compare_arms(results)
    assert few.startswith("10 labels per class: finetune 31.0% ± 1.0 vs scratch 22.0% ± 2.0 (3 seeds)")
    assert few.endswith("finetune is better by 9.0 points.")
    assert full.startswith("all labels:") and "within the spread across seeds" in full
    worse = tl.compare_arms(_fake_results({("scratch", "5"): [0.5, 0.5], ("frozen", "5"): [0.3, 0.3]}), arm="frozen")
    assert worse == ["5 labels per class: frozen 30.0% ± 0.0 vs scratch 50.0% ± 0.0 (2 seeds): "
                     "frozen is worse by 20.0 points."]
    table = tl.results_table(results)
    assert list(table.index) == ["10 per class", "all labels"] and list(table.columns) == ["scratch", "finetune"]
    assert table.loc["10 per class", "finetune"] == "31.0 ± 1.0"
