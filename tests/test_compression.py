"""The compression chapter's experiment: the teacher, the three ways to train a student, the sweep, the tables."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import tlcourse as tl
import tlcourse.compression as compression
import tlcourse.quantisation as quantisation

TINY = tl.CompressionSettings(teacher_images=200, teacher_epochs=1, transfer_images=60, budgets=(2, 4), seeds=(0, 1),
                              epochs=1, batch_size=16, temperatures=(1.0, 4.0), validation_per_class=2,
                              sweep_seeds=(0,), timing_batch=4, timing_repeats=1, timing_warmup=0)


def tiny_material(n: int = 60, classes: int = 3) -> tl.DistillMaterial:
    """Random images and logits, labels 0, 1, 2, 0, ...: no teacher, no data files."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.arange(n) % classes
    targets = torch.cat([torch.full((n, 1), float(tl.NO_LABEL)), torch.randn(n, classes, generator=g)], dim=1)
    return tl.DistillMaterial(None, x, y, targets, x[:12], y[:12], "tiny")


def test_the_wide_cnn_is_a_wider_lenet_that_train_source_can_build() -> None:
    wide = tl.WideCNN(in_channels=3, image_size=32, num_classes=7)
    assert wide(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    assert wide.fc1.in_features == 64 * 5 * 5 and tl.LeNet(image_size=32).fc1.in_features == 500  # LeNet unchanged
    assert [n for n, _ in wide.named_parameters()] == [n for n, _ in tl.LeNet().named_parameters()]
    assert tl.SOURCE_ARCHITECTURES["wide_cnn"] is tl.WideCNN
    with pytest.raises(ValueError, match="WideCNN needs image_size >= 16"):
        tl.WideCNN(image_size=12)


def test_every_profile_has_settings_and_quick_is_the_smallest() -> None:
    assert set(tl.COMPRESSION_SETTINGS) == set(tl.PROFILES)
    quick, cpu = tl.COMPRESSION_SETTINGS["quick"], tl.COMPRESSION_SETTINGS["cpu"]
    assert quick.transfer_images < cpu.transfer_images and quick.epochs <= cpu.epochs
    assert tl.compression_settings(tl.get_profile("cpu")) is cpu
    for s in tl.COMPRESSION_SETTINGS.values():  # the sweep's validation images fit in the largest budget
        assert s.validation_per_class < max(s.budgets) and len(s.seeds) >= 2


def _captured(method: str, material: tl.DistillMaterial, labelled: torch.Tensor, monkeypatch: pytest.MonkeyPatch,
              **kwargs) -> dict:
    seen = {}

    def fake_fine_tune(model, loader, *, epochs, lr, device, loss_fn):
        seen.update(batches=len(loader), x=loader.x, y=loader.y, loss_fn=loss_fn)
        return []

    monkeypatch.setattr(compression, "fine_tune", fake_fine_tune)
    tl.train_student(method, material, labelled=labelled, settings=TINY, temperature=2.0, seed=0, **kwargs)
    return seen


def test_each_method_trains_on_its_own_targets_for_the_same_number_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    material = tiny_material()
    labelled = torch.tensor([0, 1, 2, 3, 4, 5])  # true labels 0, 1, 2, 0, 1, 2
    runs = {m: _captured(m, material, labelled, monkeypatch) for m in tl.DISTILL_METHODS}
    assert {r["batches"] for r in runs.values()} == {-(-60 // 16)}  # all as many steps as the transfer set makes
    only = runs["labels only"]
    assert sorted(set(only["y"].tolist())) == [0, 1, 2] and len(only["y"]) == 60  # the 6 labels, repeated
    assert torch.equal(only["y"], (torch.arange(60) % 6) % 3)
    hard = runs["hard targets"]["y"]
    expected = material.targets[:, 1:].argmax(1)
    expected[labelled] = material.transfer_y[labelled]
    assert torch.equal(hard, expected)
    soft = runs["distilled"]["y"]
    assert soft.shape == (60, 4) and torch.equal(soft[:, 1:], material.targets[:, 1:])
    assert soft[:6, 0].tolist() == [0, 1, 2, 0, 1, 2] and (soft[6:, 0] == tl.NO_LABEL).all()
    assert (material.targets[:, 0] == tl.NO_LABEL).all()  # the material's targets are not changed in place


def test_a_smaller_pool_is_repeated_to_the_same_steps_and_must_hold_the_labels(monkeypatch) -> None:
    material, labelled = tiny_material(), torch.tensor([0, 1, 2])
    seen = _captured("distilled", material, labelled, monkeypatch, pool=torch.arange(10))
    assert seen["batches"] == -(-60 // 16) and torch.equal(seen["x"], material.transfer_x[torch.arange(60) % 10])
    with pytest.raises(ValueError, match="every labelled image must be in the pool"):
        _captured("distilled", material, torch.tensor([0, 30]), monkeypatch, pool=torch.arange(10))
    with pytest.raises(ValueError, match="unknown distillation method 'soft'"):
        _captured("soft", material, labelled, monkeypatch)


def test_the_grid_pairs_seeds_saves_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    material = tiny_material()
    path = tmp_path / "distill.json"
    runs = tl.distill_experiment(material, settings=TINY, temperature=2.0, path=path, progress=False)
    assert len(runs) == 3 * 2 * 2 and set(runs["method"]) == set(tl.DISTILL_METHODS)
    assert all(sorted(g) == [0, 1] for _, g in runs.groupby(["method", "budget"])["seed"])
    assert runs["accuracy"].between(0, 1).all()
    assert set(runs.loc[runs.method == "labels only", "unlabelled"]) == {0}
    assert set(runs.loc[(runs.method != "labels only") & (runs.budget == 2), "unlabelled"]) == {60 - 6}
    tl.compare_arms(runs[runs.budget == 2], "distilled", "labels only")  # the seeds pair up
    monkeypatch.setattr(compression, "train_student", lambda *a, **k: 1 / 0)  # nothing is trained again
    again = tl.distill_experiment(material, settings=TINY, temperature=2.0, path=path, progress=False)
    assert again.equals(runs)


def test_fewer_unlabelled_images_and_bad_requests(tmp_path: Path) -> None:
    material = tiny_material()
    few = tl.distill_experiment(material, settings=TINY, temperature=2.0, methods=("distilled",), budgets=(2,),
                                unlabelled=10, path=tmp_path / "few.json", progress=False)
    assert few["unlabelled"].tolist() == [10, 10]
    with pytest.raises(ValueError, match="unlabelled must be between 0 and the transfer set's 60"):
        tl.distill_experiment(material, settings=TINY, temperature=2.0, unlabelled=61, path=tmp_path / "x.json")
    with pytest.raises(ValueError, match="unknown distillation method"):
        tl.distill_experiment(material, settings=TINY, temperature=2.0, methods=("hard",), path=tmp_path / "y.json")


def test_the_sweep_never_lets_a_student_see_its_validation_images_nor_the_test(tmp_path: Path, monkeypatch) -> None:
    material = dataclasses.replace(tiny_material(), test_x=None, test_y=None)  # reading the test set would fail
    calls = []
    real = compression.train_student

    def spy(method, material, *, labelled, pool, **kwargs):
        calls.append((method, labelled, pool))
        return real(method, material, labelled=labelled, pool=pool, **kwargs)

    monkeypatch.setattr(compression, "train_student", spy)
    chosen, table = tl.choose_temperature(material, settings=TINY, path=tmp_path / "sweep.json", progress=False)
    assert chosen in TINY.temperatures and list(table.index) == list(TINY.temperatures)
    assert list(table.columns) == ["seed 0", "mean"] and chosen == table["mean"].idxmax()
    for method, labelled, pool in calls:
        budget = tl.per_class_subset(material.transfer_y, max(TINY.budgets), seed=0)
        held = budget[~torch.isin(budget, labelled)]  # the budget's validation images
        assert method == "distilled" and len(held) == 3 * TINY.validation_per_class
        assert not torch.isin(held, pool).any() and len(pool) == 60 - len(held)


def test_compression_material_keeps_the_transfer_set_apart_from_the_teachers_images(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    monkeypatch.setenv(tl.CHECKPOINTS_ENV, str(tmp_path))
    profile = tl.get_profile("quick", test_size=100)
    material = tl.compression_material(TINY, profile=profile)
    assert material.teacher.architecture == "wide_cnn" and material.teacher.train_images == 200
    seen, _ = tl.source_tensors("fashion_mnist", dataclasses.replace(profile, train_size=200), train=True)
    teacher_images = {bytes(im.numpy()) for im in seen}
    transfer = (material.transfer_x * 255).round().to(torch.uint8)
    assert len(transfer) == 60 and not {bytes(im.numpy()) for im in transfer} & teacher_images
    torch.testing.assert_close(material.targets[:, 1:], material.teacher.model(material.transfer_x).detach())
    assert material.test_x.shape == (100, 1, 28, 28) and float(material.test_x.max()) <= 1
    with pytest.raises(ValueError, match="do not fit in the 60,000 training images"):
        tl.compression_material(dataclasses.replace(TINY, transfer_images=59_900), profile=profile)


def test_saved_size_is_what_torch_save_writes() -> None:
    small, big = tl.saved_kb(nn.Linear(10, 10)), tl.saved_kb(nn.Linear(100, 100))
    assert 0.44 < small < big and big == pytest.approx((100 * 100 + 100) * 4 / 1000, rel=0.05)


def test_the_model_table_measures_each_model() -> None:
    material = tiny_material()
    table = tl.model_table({"a": tl.LeNet(num_classes=3), "b": tl.WideCNN(num_classes=3)}, material.test_x,
                           material.test_y, device="cpu", **TINY.timing())
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["test accuracy", "parameters", "saved kB", "ms per image (batch 1)",
                                   "ms per image (batch 4)"]
    assert table.loc["b", "parameters"] == tl.parameter_count(tl.WideCNN(num_classes=3))
    assert (table.drop(columns="test accuracy") > 0).all().all()


def test_int8_linear_layers_shrink_the_student_and_keep_its_outputs() -> None:
    torch.manual_seed(0)
    student = tl.LeNet(num_classes=3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation notice under the learner's cell
        int8 = tl.quantise_linear_layers(student)
    assert type(int8.fc1).__name__ == "Linear" and type(int8.fc1).__module__.startswith("torch.ao.nn.quantized")
    assert isinstance(student.fc1, nn.Linear) and student.fc1.weight.dtype == torch.float32  # the original stays
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(int8(x), student(x), atol=0.02, rtol=0.05)
    assert tl.saved_kb(int8) < 0.6 * tl.saved_kb(student)
    table = tl.quantisation_table(student, tiny_material(), settings=TINY)
    assert list(table.index) == ["float32", "int8 linear layers"]


def test_without_an_int8_engine_the_table_says_so_and_keeps_the_float_row(monkeypatch, capsys) -> None:
    monkeypatch.setattr(quantisation, "_int8_engines", lambda: set())
    with pytest.raises(tl.QuantisationUnavailable, match="no int8 engine"):
        tl.quantise_linear_layers(tl.LeNet())
    table = tl.quantisation_table(tl.LeNet(num_classes=3), tiny_material(), settings=TINY)
    assert list(table.index) == ["float32"] and "No int8 row: this PyTorch build" in capsys.readouterr().out
