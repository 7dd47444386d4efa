"""The training loop: hand-counted evaluation, reproducibility, frozen BatchNorm, safe checkpoints, resume."""

from __future__ import annotations

import os
from pathlib import Path

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
