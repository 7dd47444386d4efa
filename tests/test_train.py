"""The training loop: hand-counted evaluation, reproducibility, frozen BatchNorm, safe checkpoints, resume."""

from __future__ import annotations

import collections
import copy
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tlcourse as tl

CPU = torch.device("cpu")


def _data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))


def _run(epochs: int, checkpoint: Path | None = None, resume: bool = False) -> tuple[nn.Module, tl.History]:
    """Seeded LeNet run with a shuffling DataLoader and a scheduler."""
    tl.seed_everything(0)
    model = tl.LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train = DataLoader(_data(), batch_size=16, shuffle=True)  # order drawn from the global RNG
    test = DataLoader(_data(32, seed=1), batch_size=16)
    history = tl.fit(model, train, test, opt, epochs=epochs, device=CPU, scheduler=sched,
                     checkpoint=checkpoint, resume=resume, progress=False)
    return model, history


def test_evaluate_agrees_with_a_hand_count() -> None:
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))  # logits = x, so the prediction is argmax(x)
    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [0, 0, 3]])
    y = torch.tensor([0, 1, 0, 0, 2])  # predictions 0, 1, 2, 0, 2: 4 of 5 right
    batches = [(x[:3], y[:3]), (x[3:], y[3:])]  # unequal batches: the mean must weight by size
    result = tl.evaluate(model, batches, CPU)
    assert result["accuracy"] == 4 / 5
    assert result["loss"] == pytest.approx(F.cross_entropy(x, y).item(), rel=1e-6)
    assert not model.training


def test_train_one_epoch_reports_the_mean_loss_and_learns() -> None:
    tl.seed_everything(0)
    model = tl.LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _data(32).tensors
    batches = [(x, y)]
    before = F.cross_entropy(model(x), y).item()
    stats = tl.train_one_epoch(model, batches, opt, CPU, progress=False)
    assert stats["loss"] == pytest.approx(before, rel=1e-6)  # the loss of the batch before the step
    assert F.cross_entropy(model(x), y).item() < before
    with pytest.raises(ValueError, match="no batches"):
        tl.train_one_epoch(model, [], opt, CPU, progress=False)


def test_same_seed_gives_identical_histories() -> None:
    _, h1 = _run(2)
    _, h2 = _run(2)
    assert h1.epochs == 2
    assert h1.to_dict() | {"seconds": []} == h2.to_dict() | {"seconds": []}  # every metric equal, exactly


def test_frozen_batchnorm_statistics_unchanged_by_train_one_epoch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    tl.freeze(model, ["0", "1"])
    frozen_bn = {k: v.clone() for k, v in model[1].state_dict().items()}
    free_bn = model[4].running_mean.clone()
    opt = torch.optim.SGD(tl.trainable_parameters(model), lr=0.1)
    batches = [(torch.randn(8, 3, 8, 8) * 2 + 1, torch.randint(0, 2, (8,))) for _ in range(3)]
    tl.train_one_epoch(model, batches, opt, CPU, progress=False)
    assert all(torch.equal(v, frozen_bn[k]) for k, v in model[1].state_dict().items())
    assert not torch.equal(model[4].running_mean, free_bn)  # the trainable BatchNorm did update
    assert model.training and model[4].training and not model[1].training


def test_fit_works_with_a_device_loader_and_progress_bars() -> None:
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (40,))
    loader = tl.DeviceLoader(x, y, batch_size=16, device=CPU, seed=0)
    model = tl.LeNet()
    history = tl.fit(model, loader, loader, torch.optim.Adam(model.parameters()), epochs=2, device=CPU, progress=True)
    assert history.epochs == 2 and len(history.seconds) == 2 and all(s > 0 for s in history.seconds)
    assert all(0 <= a <= 1 for a in history.train_acc + history.test_acc)


def test_resume_continues_at_the_saved_epoch_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    full_model, full = _run(3)
    path = tmp_path / "run.pt"
    _run(2, checkpoint=path)
    assert tl.load_checkpoint(path, model=tl.LeNet())["epoch"] == 2
    resumed_model, resumed = _run(3, checkpoint=path, resume=True)
    assert resumed.epochs == 3 and tl.load_checkpoint(path, model=tl.LeNet())["epoch"] == 3
    assert resumed.train_loss == full.train_loss and resumed.test_acc == full.test_acc
    assert all(torch.equal(a, b) for a, b in zip(resumed_model.state_dict().values(), full_model.state_dict().values()))
    done_model, done = _run(3, checkpoint=path, resume=True)  # finished: nothing to train, stored history back
    assert done.to_dict()["train_loss"] == full.train_loss
    assert torch.equal(done_model.fc2.weight, full_model.fc2.weight)


def test_resume_reads_the_checkpoint_once_and_refuses_one_of_more_epochs(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.pt"
    _run(2, checkpoint=path)
    reads: list[Path] = []
    real_read = tl.checkpoints._read
    monkeypatch.setattr(tl.checkpoints, "_read", lambda p, *a: reads.append(p) or real_read(p, *a))
    _run(2, checkpoint=path, resume=True)
    assert len(reads) == 1, f"fit read the checkpoint {len(reads)} times to resume"
    model = tl.LeNet()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"already holds 2 epochs, more than epochs=1; nothing was loaded"):
        tl.fit(model, [], [], torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, device=CPU, checkpoint=path,
               resume=True, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_resume_without_a_file_starts_afresh_and_without_a_path_is_an_error(tmp_path: Path) -> None:
    _, history = _run(1, checkpoint=tmp_path / "new.pt", resume=True)
    assert history.epochs == 1 and (tmp_path / "new.pt").is_file()
    with pytest.raises(ValueError, match="checkpoint"):
        _run(1, resume=True)


def test_checkpoint_round_trip_restores_model_optimizer_and_history(tmp_path: Path) -> None:
    model = tl.LeNet()
    opt = torch.optim.Adam(model.parameters())
    F.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 1])).backward()
    opt.step()
    h = tl.History(train_loss=[1.0], train_acc=[0.5], test_loss=[1.2], test_acc=[0.4], seconds=[0.1])
    tl.save_checkpoint(tmp_path / "sub" / "c.pt", model=model, optimizer=opt, epoch=1, history=h, extra={"note": "x"})
    model2 = tl.LeNet()
    opt2 = torch.optim.Adam(model2.parameters())
    state = tl.load_checkpoint(tmp_path / "sub" / "c.pt", model=model2, optimizer=opt2)
    assert state["epoch"] == 1 and tl.History.from_dict(state["history"]) == h and state["extra"] == {"note": "x"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


@pytest.mark.parametrize("failure", ["torch.save", "os.replace"])
def test_an_interrupted_write_leaves_the_previous_checkpoint_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    path = tmp_path / "c.pt"
    tl.save_checkpoint(path, model=tl.LeNet(), epoch=1)
    real_save = torch.save

    def half_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(100)  # only the start of the file made it
        raise KeyboardInterrupt

    def failing_replace(*args: object) -> None:
        raise OSError("disk vanished")

    if failure == "torch.save":
        monkeypatch.setattr(torch, "save", half_save)
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises((KeyboardInterrupt, OSError)):
        tl.save_checkpoint(path, model=tl.LeNet(), epoch=2)
    monkeypatch.undo()
    assert tl.load_checkpoint(path, model=tl.LeNet())["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # the temporary file was removed


def test_bad_checkpoint_files_give_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(2048))
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    dict_file = tmp_path / "state.pt"
    torch.save(tl.LeNet().state_dict(), dict_file)  # a bare state_dict: a torch file, not our checkpoint
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    truncated = tmp_path / "truncated.pt"
    tl.save_checkpoint(truncated, model=tl.LeNet(), epoch=1)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    for path, expected in [(corrupt, "unreadable"), (text, "unreadable"), (truncated, "unreadable"),
                           (tensor_file, "not a tlcourse checkpoint"), (dict_file, "not a tlcourse checkpoint")]:
        with pytest.raises(tl.CheckpointError) as info:
            tl.load_checkpoint(path, model=tl.LeNet())
        msg = str(info.value)
        assert str(path) in msg and expected in msg and "Delete it" in msg, msg
        assert info.value.__context__ is None or info.value.__suppress_context__  # no torch traceback chained on
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        tl.load_checkpoint(tmp_path / "missing.pt", model=tl.LeNet())


def test_a_checkpoint_for_another_model_gives_a_clear_error(tmp_path: Path) -> None:
    path = tl.save_checkpoint(tmp_path / "c.pt", model=tl.LeNet(image_size=28), epoch=1)
    with pytest.raises(tl.CheckpointError, match="does not fit this model"):
        tl.load_checkpoint(path, model=tl.LeNet(image_size=32))


# --- issue 10: values the safe loader refuses, damaged files, mismatched models and optimizers --------

def _state_copy(*objects: nn.Module | torch.optim.Optimizer) -> list[dict]:
    """Deep copies of state dicts, to prove a failed load changed nothing."""
    return [copy.deepcopy(o.state_dict()) for o in objects]


def _same_state(a: object, b: object) -> bool:
    """Equal nested state dicts, tensors compared exactly."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same_state, a, b))
    return a == b


def _stepped(model: tl.LeNet, opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """One optimizer step of a 28x28 LeNet, so the optimizer holds per-parameter state."""
    F.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 1])).backward()
    opt.step()
    opt.zero_grad()
    return opt


@pytest.mark.parametrize(("where", "value", "instead"), [
    ("extra['mean']", np.zeros(3, dtype=np.float32), "torch.from_numpy"),
    ("extra['profile']", tl.get_profile("quick"), "dataclasses.asdict"),
    ("extra['config']['sizes'][1]", [1, np.arange(2)], "torch.from_numpy"),
])
def test_save_refuses_a_value_the_safe_loader_cannot_read_and_writes_nothing(
    tmp_path: Path, where: str, value: object, instead: str
) -> None:
    path = tl.save_checkpoint(tmp_path / "c.pt", model=tl.LeNet(), epoch=1)
    before = path.read_bytes()
    extra = {"config": {"sizes": value}} if "config" in where else {where[7:-2]: value}
    with pytest.raises(TypeError) as info:
        tl.save_checkpoint(path, model=tl.LeNet(), epoch=2, extra=extra)
    msg = str(info.value)
    assert where in msg and instead in msg and "weights_only" in msg and "Nothing was saved" in msg, msg
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_numpy_scalars_are_saved_as_the_python_numbers_they_equal(tmp_path: Path) -> None:
    h = tl.History(train_loss=[np.float32(0.5), np.float64(0.25)], train_acc=[np.float32(0.75)],
                   test_loss=[1.0], test_acc=[np.float32(0.125)], seconds=[np.float64(2.0)])
    model = tl.LeNet()
    tl.save_checkpoint(tmp_path / "c.pt", model=model, epoch=np.int64(1), history=h,
                       extra={"best": np.float32(0.125), "step": np.int64(7), "flag": np.bool_(True)})
    state = tl.load_checkpoint(tmp_path / "c.pt", model=tl.LeNet())
    assert state["history"]["train_loss"] == [0.5, 0.25] and state["history"]["test_acc"] == [0.125]
    assert all(type(v) is float for vs in state["history"].values() for v in vs)
    assert state["extra"] == {"best": 0.125, "step": 7, "flag": True}
    assert [type(v) for v in state["extra"].values()] == [float, int, bool] and state["epoch"] == 1


def test_every_value_save_accepts_is_read_back_by_the_safe_loader(tmp_path: Path) -> None:
    opt = torch.optim.SGD(tl.LeNet().parameters(), lr=0.1)
    extra = {"t": torch.arange(3), "p": nn.Parameter(torch.ones(2)), "s": "x", "b": b"x", "ba": bytearray(b"y"),
             "i": 1, "f": 0.5, "flag": False, "c": 1 + 2j, "none": None, "size": torch.Size([2, 3]),
             "dtype": torch.float16, "device": torch.device("cpu"), "od": collections.OrderedDict(a=1),
             "counter": collections.Counter([1, 1, 2]), "seq": [(1, 2), {3}],
             "scheduler": torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2]).state_dict()}  # holds a Counter
    tl.save_checkpoint(tmp_path / "c.pt", model=tl.LeNet(), optimizer=opt, epoch=1, extra=extra)
    back = tl.load_checkpoint(tmp_path / "c.pt", model=tl.LeNet(), optimizer=opt)["extra"]
    assert back.keys() == extra.keys() and _same_state(back, extra)
    assert [type(v) for v in back.values()] == [type(v) for v in extra.values()]


def test_an_intact_file_the_safe_loader_refuses_gets_torchs_reason_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    tl.save_checkpoint(path, model=tl.LeNet(), epoch=1)
    state = torch.load(path, weights_only=True)
    state["extra"] = {"mean": np.zeros(3)}  # what an older save_checkpoint let through
    torch.save(state, path)
    with pytest.raises(tl.CheckpointError) as info:
        tl.load_checkpoint(path, model=tl.LeNet())
    msg = str(info.value)
    assert "Unsupported global" in msg and "numpy" in msg and "_reconstruct" in msg, msg
    assert "intact" in msg and "corrupt" not in msg and "unreadable" not in msg and str(path) in msg, msg
    not_torch = tmp_path / "notes.zip"  # a readable zip archive that is no torch file
    with zipfile.ZipFile(not_torch, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(tl.CheckpointError, match="a zip archive but not a torch file") as info:
        tl.load_checkpoint(not_torch, model=tl.LeNet())
    assert "corrupt" not in str(info.value)


def _tensor_record_offset(path: Path, nbytes: int) -> int:
    """Where the data of the (stored, uncompressed) zip record holding ``nbytes`` bytes starts."""
    with zipfile.ZipFile(path) as z:
        [info] = [i for i in z.infolist() if i.file_size == nbytes and "/data/" in i.filename]
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def test_flipped_bytes_in_a_tensor_record_are_caught_before_loading(tmp_path: Path) -> None:
    path = tl.save_checkpoint(tmp_path / "c.pt", model=tl.LeNet(), epoch=1)
    start = _tensor_record_offset(path, 50 * 320 * 4)  # fc1.weight: 50 x 320 float32
    raw = bytearray(path.read_bytes())
    raw[start + 4000:start + 4008] = b"\xff" * 8  # two float32 NaNs in fc1.weight
    path.write_bytes(bytes(raw))
    model = tl.LeNet()
    [reference] = _state_copy(model)
    with pytest.raises(tl.CheckpointError) as info:
        tl.load_checkpoint(path, model=model)
    msg = str(info.value)
    assert str(path) in msg and "damaged" in msg and "CRC32" in msg and "Delete it" in msg, msg
    assert _same_state(model.state_dict(), reference) and not any(v.isnan().any() for v in model.state_dict().values())


def test_a_checkpoint_for_another_model_lists_every_difference_and_changes_nothing(tmp_path: Path) -> None:
    path = tl.save_checkpoint(tmp_path / "c.pt", model=tl.LeNet(in_channels=1, image_size=28), epoch=1)
    model = tl.LeNet(in_channels=3, image_size=32)  # 2 of its 8 tensors have other shapes
    [reference] = _state_copy(model)
    with pytest.raises(tl.CheckpointError) as info:
        tl.load_checkpoint(path, model=model)
    msg = str(info.value)
    assert "does not fit this model (LeNet)" in msg and "Nothing was loaded" in msg, msg
    assert "conv1.weight (file (10, 1, 5, 5), model (10, 3, 5, 5))" in msg, msg
    assert "fc1.weight (file (50, 320), model (50, 500))" in msg, msg
    assert _same_state(model.state_dict(), reference)  # not 6 of 8 tensors overwritten
    resnet = tl.cifar_resnet18()
    [reference] = _state_copy(resnet)
    with pytest.raises(tl.CheckpointError) as info:
        tl.load_checkpoint(path, model=resnet)
    msg = str(info.value)
    assert "missing from the file: bn1.weight, bn1.bias" in msg and "more; unexpected in the file" in msg, msg
    assert "unexpected in the file: conv1.bias, conv2.weight, conv2.bias, fc1.weight" in msg, msg
    assert "other shapes: conv1.weight (file (10, 1, 5, 5), model (64, 3, 3, 3))" in msg, msg
    assert _same_state(resnet.state_dict(), reference)


def _other_optimizers(model: nn.Module) -> dict[str, torch.optim.Optimizer]:
    params = list(model.parameters())
    return {
        "Adam instead of SGD": torch.optim.Adam(params),
        "two groups instead of one": torch.optim.SGD([{"params": params[:4]}, {"params": params[4:]}], lr=0.1,
                                                     momentum=0.9),
        "parameters in another order": torch.optim.SGD(params[::-1], lr=0.1, momentum=0.9),
    }


@pytest.mark.parametrize("case", ["Adam instead of SGD", "two groups instead of one", "parameters in another order"])
def test_an_optimizer_state_that_does_not_fit_is_refused_and_changes_nothing(tmp_path: Path, case: str) -> None:
    saved = tl.LeNet()
    sgd = _stepped(saved, torch.optim.SGD(saved.parameters(), lr=0.1, momentum=0.9))
    path = tl.save_checkpoint(tmp_path / "c.pt", model=saved, optimizer=sgd, epoch=1)
    model = tl.LeNet()
    opt = _stepped(model, _other_optimizers(model)[case])
    reference = _state_copy(model, opt)
    with pytest.raises(tl.CheckpointError) as info:
        tl.load_checkpoint(path, model=model, optimizer=opt)
    msg = str(info.value)
    assert f"does not fit this optimizer ({type(opt).__name__})" in msg and "Nothing was loaded" in msg, msg
    expected = {"Adam instead of SGD": "the file holds SGD state, this is Adam",
                "two groups instead of one": "parameter groups: 1 in the file, 2 here",
                "parameters in another order": "momentum_buffer of fc2.bias (file (10, 1, 5, 5), parameter (10,))"}
    assert expected[case] in msg, msg
    assert _same_state(model.state_dict(), reference[0]) and _same_state(opt.state_dict(), reference[1])


def test_an_sgd_state_saved_without_its_type_is_still_refused_by_adam(tmp_path: Path) -> None:
    saved = tl.LeNet()
    sgd = _stepped(saved, torch.optim.SGD(saved.parameters(), lr=0.1, momentum=0.9))
    path = tl.save_checkpoint(tmp_path / "c.pt", model=saved, optimizer=sgd, epoch=1)
    state = torch.load(path, weights_only=True)
    state.pop("optimizer_type", None)  # as in files written before the type was recorded
    torch.save(state, path)
    model = tl.LeNet()
    adam = torch.optim.Adam(model.parameters())
    reference = _state_copy(model, adam)
    with pytest.raises(tl.CheckpointError, match=r"settings \['dampening', 'momentum', 'nesterov'\] that Adam"):
        tl.load_checkpoint(path, model=model, optimizer=adam)
    assert _same_state(model.state_dict(), reference[0]) and _same_state(adam.state_dict(), reference[1])
    same = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tl.load_checkpoint(path, model=model, optimizer=same)  # the right optimizer still loads it
    assert torch.equal(same.state_dict()["state"][0]["momentum_buffer"], sgd.state_dict()["state"][0]["momentum_buffer"])


def test_resuming_a_longer_checkpoint_with_fewer_epochs_raises_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    _run(4, checkpoint=path)
    before = path.read_bytes()
    model = tl.LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    reference = _state_copy(model, opt)
    with pytest.raises(ValueError) as info:
        tl.fit(model, [], [], opt, epochs=3, device=CPU, checkpoint=path, resume=True, progress=False)
    msg = str(info.value)
    assert "already holds 4 epochs" in msg and "epochs>=4" in msg and "another checkpoint path" in msg, msg
    assert _same_state(model.state_dict(), reference[0]) and _same_state(opt.state_dict(), reference[1])
    assert path.read_bytes() == before


def test_save_and_load_remove_the_temporaries_of_killed_saves(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    stale = [tmp_path / ".c.pt.killed1.tmp", tmp_path / ".c.pt.killed2.tmp"]
    young = tmp_path / ".c.pt.inprogress.tmp"  # may belong to a save still running: kept
    for p in [*stale, young]:
        p.write_bytes(b"\0" * 1000)
    os.utime(stale[0], (0, 0))
    tl.save_checkpoint(path, model=tl.LeNet(), epoch=1)
    assert not stale[0].exists() and stale[1].exists() and young.exists()
    os.utime(stale[1], (0, 0))
    tl.load_checkpoint(path, model=tl.LeNet())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.pt.inprogress.tmp", "c.pt"]
