"""The case study: command-line arguments, results file, source checkpoints, arms, wording of results."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import tlcourse as tl
from tlcourse import casestudy, casestudy_cli
from tlcourse import sources
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
        casestudy_cli.main(argv)
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
    ("", "--budgets is empty"),  # was: the default study ran
    ("10,,50", "got ''"),
])
def test_bad_budget_is_a_usage_error(case_env: Path, capsys: pytest.CaptureFixture, budgets: str, message: str) -> None:
    assert _exit_code(["--profile", "quick", f"--budgets={budgets}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "--seeds must be whole numbers"),
    (["--arms", "scratch,resnet"], "unknown arm"),
    (["--arms", "scratch,imagnet"], "did you mean 'imagenet'"),
    (["--arms", "scratch,fintune"], "did you mean 'finetune'"),
    (["--arms", ""], "--arms is empty"),
    (["--seeds", ""], "--seeds is empty"),
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


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any training (source or target) fail the test."""
    def trained(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("training started although the command should have stopped first")

    monkeypatch.setattr(sources, "fit", trained)
    monkeypatch.setattr(casestudy, "run_arm", trained)


@pytest.mark.parametrize("device, missing", [
    ("mps", lambda: torch.backends.mps.is_available()),
    ("cuda", lambda: torch.cuda.is_available()),
    ("cuda:99", lambda: False),
])
def test_a_device_this_machine_lacks_is_refused_before_loading_data(case_env: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch, device: str,
                                                                    missing) -> None:  # noqa: ANN001
    if missing():
        pytest.skip(f"{device} exists on this machine")

    def no_data(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the data were loaded before the device was checked")

    monkeypatch.setattr(casestudy_cli, "cifar_tensors", no_data)
    assert _exit_code(["--profile", "quick", "--device", device]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and device.split(":")[0] in err and "Traceback" not in err


def test_an_unwritable_output_folder_fails_before_any_training(case_env: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    in_the_way = case_env / "a-file"
    in_the_way.write_text("not a folder")
    _no_training(monkeypatch)
    argv = ["--profile", "quick", "--budgets", "5", "--seeds", "0", "--out", str(in_the_way / "out")]
    assert casestudy_cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: Cannot write the results to ")
    assert "a file is in the way" in err and "Nothing was computed" in err
    assert in_the_way.read_text() == "not a folder"


def test_an_unwritable_checkpoint_folder_fails_before_the_source_trains(case_env: Path, capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    in_the_way = case_env / "a-file"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv(tl.CHECKPOINTS_ENV, str(in_the_way / "checkpoints"))
    _no_training(monkeypatch)
    with pytest.raises(tl.OutputNotWritableError, match=f"the trained source.*{tl.CHECKPOINTS_ENV}"):
        tl.train_source("mnist", profile=tl.get_profile("quick"), in_channels=3, image_size=32)
    out = case_env / "out"
    assert casestudy_cli.main(["--profile", "quick", "--budgets", "5", "--seeds", "0", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Cannot write the trained source" in err
    assert not (out / "results.json").exists()


# --- the results file ---

def test_results_json_schema(case_env: Path, capsys: pytest.CaptureFixture) -> None:
    out = case_env / "out"
    argv = ["--profile", "quick", "--budgets", "5,all", "--seeds", "0", "--arms", "scratch,finetune",
            "--out", str(out), "--quiet"]
    assert casestudy_cli.main(argv) == 0
    assert {"results.json", "accuracy_vs_labels.png", "source_history.png"} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == tl.RESULTS_SCHEMA and set(results) == {"schema", "metadata", "runs"}
    meta = results["metadata"]
    profile = tl.get_profile("quick")
    assert meta["profile"] == "quick" and meta["standins"] == ["cifar10", "mnist"] and meta["device"] == "cpu"
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
    assert casestudy_cli.main(["--profile", "quick", "--budgets", "5", "--seeds", "0", "--arms", "scratch",
                               "--quiet"]) == 0
    path = tl.default_results_path(profile)
    assert path.parent.name == "casestudy-quick-standin" and path.is_file()
    assert tl.find_results(profile, arms=["scratch"])["runs"][0]["arm"] == "scratch"
    assert tl.find_results(profile) is None  # the notebook needs every arm
    assert tl.find_results(tl.get_profile("quick", seeds=(0, 1, 2)), arms=["scratch"]) is None  # another profile
    with monkeypatch.context() as m:  # the same kind of data, but other digits (another sample): not these results
        digits = casestudy.source_tensors

        def other_digits(*args, **kwargs):  # noqa: ANN002, ANN003
            x, y = digits(*args, **kwargs)
            return x, y.roll(1)

        m.setattr(casestudy, "source_tensors", other_digits)
        assert tl.find_results(profile, arms=["scratch"]) is None
    assert tl.find_results(profile, arms=["scratch"]) is not None
    monkeypatch.delenv(tl.STANDIN_ENV)
    assert tl.find_results(profile, arms=["scratch"]) is None  # real data now: stand-in results do not count


def test_a_rerun_resumes_or_refuses_but_never_drops_finished_runs(case_env: Path, capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = case_env / "out"
    path = out / "results.json"
    base = ["--profile", "quick", "--arms", "scratch", "--out", str(out), "--quiet"]
    assert casestudy_cli.main([*base, "--budgets", "5", "--seeds", "0"]) == 0
    first = json.loads(path.read_text())
    assert first["metadata"]["complete"] is True and len(first["metadata"]["data_fingerprint"]) == 12
    capsys.readouterr()
    # more seeds: the finished run is taken over, only the new one is computed
    assert casestudy_cli.main([*base, "--budgets", "5", "--seeds", "0,1"]) == 0
    second = json.loads(path.read_text())
    assert [r["seed"] for r in second["runs"]] == [0, 1] and second["runs"][0] == first["runs"][0]
    assert second["metadata"]["resumed_runs"] == 1
    # a study that leaves finished runs out would drop them: refused, the file unchanged
    before = path.read_text()
    _no_training(monkeypatch)
    capsys.readouterr()
    assert casestudy_cli.main([*base, "--budgets", "6", "--seeds", "0"]) == 1
    err = capsys.readouterr().err
    assert "2 finished runs outside" in err and "scratch budget 5 seed 0" in err and path.read_text() == before
    # the same grid with another recipe: refused, naming what differs
    tampered = json.loads(before)
    tampered["metadata"]["settings"]["min_steps"] = 999
    path.write_text(json.dumps(tampered))
    assert casestudy_cli.main([*base, "--budgets", "5", "--seeds", "0,1"]) == 1
    assert "settings.min_steps (999 in the file, 20 now)" in capsys.readouterr().err
    path.write_text("{ damaged")
    assert casestudy_cli.main([*base, "--budgets", "5", "--seeds", "0,1"]) == 1
    assert "cannot be continued" in capsys.readouterr().err and path.read_text() == "{ damaged"


def _study(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tlcourse", "casestudy", "--profile", "quick", "--budgets", "5,10",
            "--seeds", "0,1,2", "--arms", "scratch,finetune", "--out", str(out), *extra]


def _runs_in(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
def test_ctrl_c_keeps_the_finished_runs_and_the_same_command_resumes(case_env: Path) -> None:
    out = case_env / "out"
    path = out / "results.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731 (a shell may ignore it)
    proc = subprocess.Popen(_study(out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=restore_sigint)
    deadline = time.monotonic() + 300
    while _runs_in(path) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the study ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    message = stderr.strip().splitlines()[-1]
    kept = _runs_in(path)
    assert 2 <= kept < 12
    assert message.startswith(f"Interrupted: kept {kept} finished runs in {path}; to resume, run: ")
    assert message.endswith(f"python -m tlcourse casestudy --profile quick --budgets 5,10 --seeds 0,1,2 "
                            f"--arms scratch,finetune --out {out}")
    partial = json.loads(path.read_text())
    assert partial["metadata"]["complete"] is False
    assert tl.find_results(tl.get_profile("quick"), path, arms=["scratch", "finetune"]) is None  # not yet
    done = re.findall(r"^\[\s*\d+/12\]", stdout, flags=re.M)
    assert len(done) >= kept
    # the same command again: the kept runs are not repeated
    again = subprocess.run(_study(out), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{kept} of 12 runs already done: computing the other {12 - kept}" in again.stdout
    computed = re.findall(r"^\[\s*(\d+)/12\]", again.stdout, flags=re.M)
    assert [int(n) for n in computed] == list(range(kept + 1, 13))
    results = json.loads(path.read_text())
    assert results["metadata"]["complete"] is True and results["metadata"]["resumed_runs"] == kept
    assert len(results["runs"]) == 12
    assert {(r["arm"], r["budget"], r["seed"]) for r in results["runs"]} == \
        {(a, b, s) for a in ("scratch", "finetune") for b in (5, 10) for s in (0, 1, 2)}
    for row in partial["runs"]:  # taken over exactly, timings included: not computed again
        assert row in results["runs"]
    assert tl.find_results(tl.get_profile("quick"), path, arms=["scratch", "finetune"]) == results


# --- the source model (its cache and resuming: tests/test_sources.py) ---

def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C as the source's training starts epoch ``epoch`` (0-based)."""

    class Loader(tl.DeviceLoader):
        def set_epoch(self, e: int) -> None:
            if self.shuffle and e == epoch:
                raise KeyboardInterrupt
            super().set_epoch(e)

    monkeypatch.setattr(sources, "DeviceLoader", Loader)


def test_ctrl_c_during_source_training_on_the_command_line(case_env: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_at_epoch(monkeypatch, 0)
    argv = ["--profile", "quick", "--budgets", "5", "--seeds", "0", "--arms", "finetune", "--out",
            str(case_env / "out")]
    assert casestudy_cli.main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == ("Interrupted: kept no epoch of the source (none had ended) and no finished run (none had "
                   f"ended); to resume, run: python -m tlcourse casestudy {' '.join(argv)}")


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
    with pytest.raises(ValueError, match="'imagenet' is not a LeNet arm"):
        tl.build_arm("imagenet", source)
    with pytest.raises(ValueError, match="'resnet' is an unknown arm"):
        tl.build_arm("resnet", source)


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
    comparisons = tl.case_study_comparisons(results)
    assert list(comparisons) == ["10", "all"]
    assert str(comparisons["10"]) == ("finetune - scratch: +9.0 points (95% CI +6.5 to +11.5; paired t over 3 seeds): "
                                      "finetune is higher.")
    assert comparisons["all"].verdict == "cannot tell" and "cannot tell the two apart" in str(comparisons["all"])
    worse = tl.case_study_comparisons(_fake_results({("scratch", "5"): [0.5, 0.52], ("frozen", "5"): [0.3, 0.31]}),
                                      arm="frozen")
    assert worse["5"].verdict == "lower" and worse["5"].seeds == (0, 1)
    table = tl.results_table(results)
    assert list(table.index) == ["10 per class", "all labels"] and list(table.columns) == ["scratch", "finetune"]
    assert table.loc["10 per class", "finetune"] == "31.0 ± 1.0"


# --- the ImageNet arm -------------------------------------------------------------------------------

@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache in a temporary TORCH_HOME, and downloads switched off."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    return tmp_path / "torch_home"


def _tiny_cifar(n_train: int = 60, n_test: int = 20) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    g = torch.Generator().manual_seed(0)
    return ((torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n_train) % 10),
            (torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n_test) % 10))


@pytest.mark.parametrize("name", ["resnet18", "efficientnet"])
def test_network_pieces_run_in_order_are_the_network(name: str) -> None:
    torch.manual_seed(0)
    model = tl.imagenet_model("resnet18", num_classes=None) if name == "resnet18" else tl.efficientnet_lite0()
    pieces = tl.network_pieces(model.eval())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.Sequential(OrderedDict(pieces))(x), model(x))
    assert pieces[-1] == ("fc", model.fc if name == "resnet18" else model._fc)
    shared = {id(p) for _, piece in pieces for p in piece.parameters()}
    assert shared == {id(p) for p in model.parameters()}  # every parameter, none copied


def test_imagenet_arm_settings_per_profile_and_bad_names() -> None:
    quick, cpu, full = (tl.ImageNetArmSettings.for_profile(tl.get_profile(n)) for n in ("quick", "cpu", "full"))
    assert (quick.size, quick.trained) == (32, "last") and (cpu.size, cpu.trained) == (64, "last")
    assert (full.size, full.trained) == (224, "all") and full.head_lr_mult == 10
    assert "the last block and the head trained at 64x64 px" in cpu.describe() and "flips" in cpu.describe()
    with pytest.raises(ValueError, match="did you mean 'last'"):
        tl.ImageNetArmSettings(trained="lats")


def test_the_imagenet_arm_refuses_random_weights(offline_hub: Path) -> None:
    standin = tl.imagenet_source("resnet18", download=False, offline=False, standin=True)
    train, test = _tiny_cifar()
    with pytest.raises(tl.ImageNetUnavailableError, match="not ImageNet"):
        tl.ImageNetArm(standin, train, test, profile=tl.get_profile("quick"), device="cpu")
    with pytest.raises(ValueError, match="real ImageNet network"):
        tl.run_arm("imagenet", tl.LeNet(in_channels=3, image_size=32), train, test, budget=2, seed=0,
                   profile=tl.get_profile("quick"), device="cpu")


def test_the_frozen_layers_outputs_are_computed_once_and_mirrored_exactly(offline_hub: Path) -> None:
    src = tl.imagenet_source()
    train, test = _tiny_cifar()
    profile = tl.get_profile("quick")
    arm = tl.ImageNetArm(src, train, test, profile=profile, device="cpu")
    row = arm.run(budget=2, seed=0)
    assert row["arm"] == "imagenet" and row["labels"] == 20 and row["steps"] == 20 and row["budget"] == 2
    assert row["test_acc"] in {k / 20 for k in range(21)} and row["seconds"] > 0
    outputs, test_outputs = arm.cached
    assert int(test_outputs.done[False].sum()) == 20 and True not in test_outputs.done  # the test set: no mirrors
    first = arm.frozen_seconds
    arm.run(budget=2, seed=0)
    assert arm.frozen_seconds == first  # the same images: nothing computed again
    trunk = torch.nn.Sequential(OrderedDict(tl.network_pieces(src.model)[:arm.cut])).eval()
    idx = torch.nonzero(outputs.done[True]).flatten()[:3]
    with torch.no_grad():
        mirrored = trunk(tl.efficientnet_preprocess(train[0][idx].flip(-1), size=32))
    torch.testing.assert_close(outputs.values[True][idx].float(), mirrored, atol=2e-2, rtol=1e-2)  # float16


def test_the_new_head_learns_ten_times_faster_and_the_frozen_layers_stay(offline_hub: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = tl.imagenet_source()
    before = {k: v.clone() for k, v in src.model.state_dict().items()}
    groups: list[list[dict]] = []
    real_sgd = torch.optim.SGD

    def spy(params, **kwargs):  # noqa: ANN001, ANN003
        groups.append([{"name": g["name"], "lr": g["lr"], "n": len(g["params"])} for g in params])
        return real_sgd(params, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", spy)
    train, test = _tiny_cifar()
    tl.run_imagenet_arm(src, train, test, budget=2, seed=0, profile=tl.get_profile("quick"), device="cpu")
    assert [(g["name"], g["lr"]) for g in groups[0]] == [("body", 0.01), ("head", 0.1)]
    assert groups[0][1]["n"] == 2  # the new head's weight and bias
    after = src.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # runs train copies, never the source


def test_every_layer_is_trained_on_resized_augmented_images(offline_hub: Path) -> None:
    _cache = offline_hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # a ResNet-18 in the cache
    _cache.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(tl.imagenet_model("resnet18", num_classes=None).state_dict(), _cache)
    src = tl.imagenet_source("resnet18")
    assert src.kind == "imagenet"
    train, test = _tiny_cifar()
    settings = tl.ImageNetArmSettings(size=48, trained="all", min_steps=2, epochs=1)
    arm = tl.ImageNetArm(src, train, test, profile=tl.get_profile("quick"), device="cpu", settings=settings)
    assert arm.cut == 0 and arm.cached is None and arm.frozen_seconds == 0
    row = arm.run(budget=3, seed=1)
    assert row["steps"] == 2 and row["labels"] == 30


def test_the_imagenet_arm_runs_in_the_quick_profile_and_is_recorded(case_env: Path, offline_hub: Path) -> None:
    profile = tl.get_profile("quick")
    results = tl.run_case_study(profile, "cpu", arms=["scratch", "imagenet"], budgets=[5], seeds=[0], log=None)
    meta = results["metadata"]
    assert meta["arms"] == ["scratch", "imagenet"] and meta["source"] is None  # no MNIST source needed
    inet = meta["imagenet_arm"]
    assert inet["kind"] == "imagenet-offline" and "unofficial" in inet["note"] and inet["settings"]["size"] == 32
    assert inet["frozen_outputs_s"] > 0 and "last block" in inet["recipe"]
    row = next(r for r in results["runs"] if r["arm"] == "imagenet")
    assert row["labels"] == 50 and 0 <= row["test_acc"] <= 1
    assert list(tl.results_table(results).columns) == ["scratch", "imagenet"]
    fig = tl.plot_results(results)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("imagenet: EfficientNet-Lite0") for label in labels)
    assert "or ImageNet" in fig.axes[0].get_title()
    assert str(tl.case_study_comparisons(results, arm="imagenet")["5"]).startswith("imagenet - scratch: ")


def test_a_results_file_without_the_imagenet_arm_is_read_and_continued(case_env: Path, offline_hub: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tl.get_profile("quick")
    out = case_env / "out"
    path = out / "results.json"
    assert casestudy_cli.main(["--profile", "quick", "--arms", "scratch", "--budgets", "5", "--seeds", "0",
                               "--out", str(out), "--quiet"]) == 0
    old = json.loads(path.read_text())
    del old["metadata"]["imagenet_arm"]  # as written before the arm existed
    path.write_text(json.dumps(old))
    assert tl.find_results(profile, path, arms=["scratch"]) == old  # still read
    assert tl.find_results(profile, path) is None  # but it lacks the imagenet arm
    lines: list[str] = []
    both = tl.case_study_results(profile, "cpu", path=path, log=lines.append, arms=["scratch", "imagenet"],
                                 budgets=[5], seeds=[0])
    assert [r["arm"] for r in both["runs"]] == ["scratch", "imagenet"] and both["runs"][0] == old["runs"][0]
    assert "Reused 1 finished runs" in lines[-1] and json.loads(path.read_text()) == old  # nothing written
    # the command continues the file: only the imagenet run is computed
    assert casestudy_cli.main(["--profile", "quick", "--arms", "scratch,imagenet", "--budgets", "5", "--seeds", "0",
                               "--out", str(out), "--quiet"]) == 0
    new = json.loads(path.read_text())
    assert new["metadata"]["resumed_runs"] == 1 and new["runs"][0] == old["runs"][0]
    # imagenet runs made with another recipe are not reused: refused, naming what differs
    tampered = json.loads(path.read_text())
    tampered["metadata"]["imagenet_arm"]["settings"]["size"] = 64
    path.write_text(json.dumps(tampered))
    with pytest.raises(tl.ResultsConflictError, match=r"imagenet_arm\.settings\.size \(64 in the file, 32 now\)"):
        tl.reusable_runs(path, planned={**new["metadata"], "arms": ["scratch", "imagenet"]})


def test_without_a_real_imagenet_network_the_arm_stops_before_anything_runs(case_env: Path, offline_hub: Path,
                                                                          capsys: pytest.CaptureFixture,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tl.pretrained, "efficientnet_available", lambda: False)
    _no_training(monkeypatch)
    monkeypatch.setattr(casestudy, "cifar_tensors", lambda *a, **k: pytest.fail("data loaded first"))
    with pytest.raises(tl.ImageNetUnavailableError, match="instead of faking it.*Or leave the arm out"):
        tl.run_case_study(tl.get_profile("quick"), "cpu", arms=["imagenet"], budgets=[5], seeds=[0], log=None)
    out = case_env / "out"
    assert casestudy_cli.main(["--profile", "quick", "--arms", "scratch,imagenet", "--budgets", "5", "--seeds", "0",
                               "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The imagenet arm needs a real ImageNet-pretrained network") and "Traceback" not in err
    assert not (out / "results.json").exists()


def test_the_cifar_stand_in_does_not_saturate(standin_env: Path) -> None:
    """Issue 12: on the CIFAR-10 stand-in, training from scratch on every label stays clearly below 100 %.

    In the cpu profile (20,000 stand-in images, 10 epochs), the largest budget a laptop runs; the
    full profile's is chapter 5's on a GPU. It must also learn something: chance is 10 %.
    """
    cpu = tl.get_profile("cpu")
    train, test = tl.cifar_tensors(cpu, train=True), tl.cifar_tensors(cpu, train=False)
    row = tl.run_arm("scratch", None, train, test, budget=None, seed=0, profile=cpu, device="cpu")
    assert 0.3 < row["test_acc"] < 0.9, f"scratch on all {row['labels']:,} stand-in labels: {row['test_acc']:.1%}"
