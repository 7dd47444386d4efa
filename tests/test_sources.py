"""train_source: the one way every chapter trains or loads a source network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tlcourse as tl
from tlcourse import sources


@pytest.fixture
def src_env(standin_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins in a temporary data directory, and a temporary checkpoint directory."""
    monkeypatch.setenv(tl.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    return tmp_path / "checkpoints"


SMALL = dict(train_size=200, test_size=100, source_epochs=1)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _counting_fit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = sources.fit

    def fit(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sources, "fit", fit)
    return calls


def test_a_source_trains_once_then_loads_the_same_weights(src_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fits = _counting_fit(monkeypatch)
    profile = tl.get_profile("quick", **SMALL)
    first = tl.train_source("mnist", profile=profile)
    assert not first.loaded and first.path.is_file() and first.path.parent == src_env and first.train_images == 200
    state = torch.get_rng_state()
    second = tl.train_source("mnist", profile=profile)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random stream is untouched
    assert second.loaded and second.path == first.path and len(fits) == 1
    assert _same_weights(first.model, second.model) and second.history == first.history
    assert "MNIST (stand-in)" in repr(second) and "1x28x28" in repr(second)
    tl.train_source("mnist", profile=profile, retrain=True)
    assert len(fits) == 2
    first.path.write_bytes(b"not a checkpoint")  # a damaged file is replaced, with the same result
    fourth = tl.train_source("mnist", profile=profile)
    assert not fourth.loaded and _same_weights(first.model, fourth.model)


@pytest.mark.parametrize("change", [
    dict(profile=tl.get_profile("quick", **{**SMALL, "train_size": 300})),
    dict(recipe=tl.SourceRecipe(lr=1e-3)),
    dict(seed=1),
    dict(in_channels=3, image_size=32),
    dict(architecture="lenet_bn"),
])
def test_any_other_setting_is_another_source(src_env: Path, change: dict) -> None:
    base = tl.train_source("mnist", profile=tl.get_profile("quick", **SMALL))
    other = tl.train_source("mnist", **{"profile": tl.get_profile("quick", **SMALL), **change})
    assert not other.loaded and other.path != base.path and other.fingerprint != base.fingerprint


def test_the_cache_retrains_when_the_data_change(src_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same profile, same settings, other images (another sample, real instead of stand-in): trained anew."""
    profile = tl.get_profile("quick", **SMALL)
    first = tl.train_source("mnist", profile=profile)
    real_tensors = sources.source_tensors

    def other_digits(*args, **kwargs):  # noqa: ANN002, ANN003
        x, y = real_tensors(*args, **kwargs)
        x = x.clone()
        x[0, 0, 0, 0] ^= 1  # one pixel of one image differs
        return x, y

    monkeypatch.setattr(sources, "source_tensors", other_digits)
    fits = _counting_fit(monkeypatch)
    second = tl.train_source("mnist", profile=profile)
    assert not second.loaded and len(fits) == 1 and second.path != first.path


def test_an_unwritable_checkpoint_folder_fails_before_any_training(src_env: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src_env.parent.mkdir(parents=True, exist_ok=True)
    src_env.write_text("a file where the checkpoint folder should be")
    fits = _counting_fit(monkeypatch)
    with pytest.raises(tl.OutputNotWritableError, match=rf"trained source \(cache=False .*{tl.CHECKPOINTS_ENV}"):
        tl.train_source("mnist", profile=tl.get_profile("quick", **SMALL))
    assert fits == [], "the source was trained before its folder was checked"
    assert tl.train_source("mnist", profile=tl.get_profile("quick", **SMALL), cache=False).path is None


def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> list[int]:
    """Ctrl-C as training starts epoch ``epoch`` (0-based); returns the epochs started."""
    started: list[int] = []

    class Loader(tl.DeviceLoader):
        def set_epoch(self, e: int) -> None:
            if self.shuffle:  # the training loader, not the test one
                started.append(e)
                if e == epoch:
                    raise KeyboardInterrupt
            super().set_epoch(e)

    monkeypatch.setattr(sources, "DeviceLoader", Loader)
    return started


def test_ctrl_c_keeps_finished_epochs_and_the_next_call_resumes(src_env: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tl.get_profile("quick", **{**SMALL, "source_epochs": 3})
    started = _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(tl.SourceInterrupted, match=r"kept the source's first 2 of 3 epochs \(in .*\.partial\.pt\); the next"):
        tl.train_source("mnist", profile=profile)
    assert started == [0, 1, 2] and len(list(src_env.glob("*.partial.pt"))) == 1
    started = _interrupt_at_epoch(monkeypatch, -1)  # counts, never interrupts
    resumed = tl.train_source("mnist", profile=profile)
    assert started == [2], "the finished epochs were trained again"
    assert resumed.epochs == 3 and resumed.path.is_file() and not list(src_env.glob("*.partial.pt"))
    whole = tl.train_source("mnist", profile=profile, cache=False)
    assert whole.history.test_acc == resumed.history.test_acc  # interrupted and resumed = trained in one go
    assert _same_weights(whole.model, resumed.model)


def test_bad_arguments_are_refused_before_anything_is_loaded(src_env: Path) -> None:
    with pytest.raises(ValueError, match="unknown architecture 'lenet-bn' \\(did you mean 'lenet_bn'\\?\\)"):
        tl.train_source("mnist", architecture="lenet-bn")
    with pytest.raises(ValueError, match=r"CIFAR-10 \(stand-in\) comes as 3x32; got 1x28"):
        tl.train_source("cifar10", profile=tl.get_profile("quick", **SMALL), in_channels=1, image_size=28)
    assert not src_env.exists()
