"""The CUDA path: mixed precision, the float16 loss scaler, data and model on one device, no sync per step.

Every test here needs a CUDA GPU and is skipped without one; ``make gpu-check``
(``benchmarks/gpu_check.sh``, see ``benchmarks/GPU_CHECK.md``) runs them on a GPU machine.
"No host-device synchronisation per step" is asserted, not timed: within an epoch the
batches are produced under ``torch.cuda.set_sync_debug_mode("error")``, so any operation
that makes the host wait for the GPU (``.item()``, a blocking copy to or from the device,
``nonzero``) raises and names itself. Only the first batch of an epoch may synchronise:
that is where a ``DeviceLoader`` uploads the epoch's permutation.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Iterable, Iterator

import pytest
import torch
import torch.nn.functional as F

import tlcourse as tl
import tlcourse.arms as arms_module
import tlcourse.train as train_module

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run make gpu-check on a GPU machine)"),
]

CUDA = torch.device("cuda")
EPOCHS = 3
SEEDS = (0, 1, 2)
# Mean test accuracy over SEEDS may differ by this much between two precisions. Measured on the CPU
# (bfloat16 autocast against float32, same seeds): at most 1.4 points per seed, while one seed differs from
# another by up to 7.5 points; the 2,000 test images alone give a binomial sd of about 0.8 points.
NOISE = 0.03
GradScaler = torch.amp.GradScaler  # the real class, before any test replaces torch.amp.GradScaler with a spy


@pytest.fixture(scope="module")
def images() -> Iterator[tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]]:
    """5,000 training and 2,000 test CIFAR-10 stand-ins, uint8 ``(N, 3, 32, 32)`` on the CPU.

    Not the digits: LeNet gets 99-100% of those in three epochs, where every precision looks alike.
    """
    with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as mp:
        mp.setenv(tl.DATA_ENV, root)
        mp.setenv(tl.STANDIN_ENV, "1")
        p = dataclasses.replace(tl.get_profile("quick"), standin_train=5_000, standin_test=2_000,
                                train_size=None, test_size=None)
        yield (tl.dataset_tensors(tl.load_dataset("cifar10", train=True, profile=p)),
               tl.dataset_tensors(tl.load_dataset("cifar10", train=False, profile=p)))


@pytest.fixture
def cifar_shaped() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Random 3x32x32 uint8 images, 60 of each of 10 classes, and 200 test images: shapes, not content."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (600, 3, 32, 32), dtype=torch.uint8, generator=g)
    xt = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8, generator=g)
    return (x, torch.arange(600) % 10), (xt, torch.arange(200) % 10)


@pytest.fixture(autouse=True)
def _sync_debug_off() -> Iterator[None]:
    yield
    torch.cuda.set_sync_debug_mode("default")  # also after a test that failed inside a guarded epoch


class NoSyncAfterFirstBatch:
    """The batches of ``loader``; from the first one on, any host-device synchronisation raises."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        batches = iter(self.loader)
        first = next(batches)  # a DeviceLoader uploads the epoch's permutation here: once per epoch, allowed
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield first  # the training step runs while the generator waits here...
            yield from batches  # ...and each next batch is produced in "error" mode too
        finally:
            torch.cuda.set_sync_debug_mode("default")  # before the one read of the loss at the end


def loaders(images, *, seed: int = 0) -> tuple[tl.DeviceLoader, tl.DeviceLoader]:
    (x, y), (xt, yt) = images
    mean, std = tl.channel_stats(x)
    return (tl.DeviceLoader(x, y, batch_size=128, device=CUDA, mean=mean, std=std, seed=seed),
            tl.DeviceLoader(xt, yt, batch_size=1_000, device=CUDA, mean=mean, std=std, shuffle=False))


def mean_accuracy(images, *, scaler: torch.amp.GradScaler | None = None) -> tuple[float, set[torch.dtype], int]:
    """Train a LeNet per seed in SEEDS on CUDA; (mean test accuracy, dtypes of the logits, steps per epoch)."""
    accuracies, dtypes = [], set()
    for seed in SEEDS:
        train, test = loaders(images, seed=seed)
        tl.seed_everything(seed)
        model = tl.LeNet(in_channels=3, image_size=32).to(CUDA)
        model.fc2.register_forward_hook(lambda module, inputs, out: dtypes.add(out.dtype))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(EPOCHS):
            tl.train_one_epoch(model, train, opt, CUDA, scaler=scaler, progress=False)
        accuracies.append(tl.evaluate(model, test, CUDA)["accuracy"])
    return sum(accuracies) / len(accuracies), dtypes, len(train)


def amp_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full precision on CUDA: train_one_epoch and evaluate take their autocast dtype from here."""
    monkeypatch.setattr(train_module, "_autocast_dtype", lambda device: None)


def no_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the GPU has no bfloat16, as a pre-Ampere card: the loop falls back to float16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)


# --- mixed precision ---

def test_bfloat16_autocast_reaches_the_accuracy_of_float32(images, monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16; the float16 test covers it")
    amp_acc, amp_dtypes, _ = mean_accuracy(images)
    amp_off(monkeypatch)
    fp32_acc, fp32_dtypes, _ = mean_accuracy(images)
    assert amp_dtypes == {torch.bfloat16}  # the forward pass really ran in bfloat16...
    assert fp32_dtypes == {torch.float32}  # ...and in float32 with AMP off
    assert fp32_acc > 0.6, f"float32 reached only {fp32_acc:.1%}: the comparison needs a model that learned"
    assert abs(amp_acc - fp32_acc) <= NOISE, f"bfloat16 {amp_acc:.2%} vs float32 {fp32_acc:.2%}"


def test_float16_trains_through_the_grad_scaler_like_float32(images, monkeypatch: pytest.MonkeyPatch) -> None:
    class CountingScaler(GradScaler):
        updates = 0

        def update(self, new_scale=None) -> None:
            self.updates += 1
            super().update(new_scale)

    amp_off(monkeypatch)
    fp32_acc, _, _ = mean_accuracy(images)
    monkeypatch.undo()
    no_bfloat16(monkeypatch)
    scaler = CountingScaler("cuda")
    fp16_acc, fp16_dtypes, steps = mean_accuracy(images, scaler=scaler)
    assert fp16_dtypes == {torch.float16}
    assert scaler.updates == len(SEEDS) * EPOCHS * steps  # every step went through the scaler
    assert math.isfinite(scaler.get_scale()) and scaler.get_scale() >= 1.0
    assert abs(fp16_acc - fp32_acc) <= NOISE, f"float16 {fp16_acc:.2%} vs float32 {fp32_acc:.2%}"


def test_fit_on_float16_makes_one_scaler_for_the_whole_run(images, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[GradScaler] = []

    class SpyScaler(GradScaler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.updates = 0
            made.append(self)

        def update(self, new_scale=None) -> None:
            self.updates += 1
            super().update(new_scale)

    no_bfloat16(monkeypatch)
    monkeypatch.setattr(torch.amp, "GradScaler", SpyScaler)
    train, test = loaders(images)
    tl.seed_everything(0)
    model = tl.LeNet(in_channels=3, image_size=32).to(CUDA)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = tl.fit(model, train, test, opt, epochs=2, device=CUDA, progress=False)
    assert len(made) == 1, f"{len(made)} scalers: the loss scale must carry across epochs"
    assert made[0].updates == 2 * len(train)
    assert all(math.isfinite(v) for v in history.train_loss + history.test_loss)
    assert history.test_acc[-1] > 0.5


# --- one device ---

def test_batches_models_and_the_case_study_live_on_the_gpu(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                          cifar_shaped) -> None:
    monkeypatch.setenv(tl.DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    profile = tl.get_profile("quick")
    source = tl.train_source("mnist", profile=profile, device=CUDA, in_channels=3, image_size=32, cache=False).model
    assert {p.device.type for p in source.parameters()} == {CUDA.type}
    assert source.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # the layout CUDA AMP prefers
    seen: list[tuple[str, str]] = []
    build = arms_module.build_arm

    def spying_build(*args, **kwargs):
        model, report = build(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inputs: seen.append(
            (inputs[0].device.type, next(m.parameters()).device.type)))
        return model, report

    monkeypatch.setattr(arms_module, "build_arm", spying_build)
    train, test = cifar_shaped
    row = tl.run_arm("finetune", source, train, test, budget=10, seed=0, profile=profile, device=CUDA)
    assert seen and set(seen) == {(CUDA.type, CUDA.type)}  # every batch and the model on the GPU, training and test
    assert 0.0 <= row["test_acc"] <= 1.0 and row["steps"] > 0


def test_augmented_channels_last_batches_stay_channels_last_on_the_gpu(cifar_shaped) -> None:
    (x, y), _ = cifar_shaped
    for augment in (None, tl.flip_and_crop(2)):  # run_arm's loader augments: its batches must keep the layout
        loader = tl.DeviceLoader(x, y, batch_size=128, device=CUDA, augment=augment, channels_last=True)
        xb, yb = next(iter(loader))
        assert xb.device.type == yb.device.type == CUDA.type
        assert xb.is_contiguous(memory_format=torch.channels_last), \
            f"augment={augment is not None}: batch strides {xb.stride()} are not channels-last"


# --- no host-device synchronisation per step ---

def test_the_guard_catches_a_sync_per_step(cifar_shaped) -> None:
    """The control: a loss that reads its value every step (``.item()``) must be caught."""
    (x, y), _ = cifar_shaped
    model = tl.LeNet(in_channels=3, image_size=32).to(CUDA)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = tl.DeviceLoader(x, y, batch_size=128, device=CUDA)

    def reading_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target)
        loss.item()  # what a per-step print of the loss does
        return loss

    with pytest.raises(RuntimeError, match="synchroniz"):
        tl.train_one_epoch(model, NoSyncAfterFirstBatch(loader), opt, CUDA, loss_fn=reading_loss, progress=False)


def test_an_epoch_and_an_evaluation_never_sync_between_steps(cifar_shaped) -> None:
    (x, y), (xt, yt) = cifar_shaped
    mean, std = tl.channel_stats(x)
    model = tl.LeNet(in_channels=3, image_size=32).to(CUDA, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    train = tl.DeviceLoader(x, y, batch_size=64, device=CUDA, mean=mean, std=std, augment=tl.flip_and_crop(2),
                            channels_last=True, drop_last=True)
    test = tl.DeviceLoader(xt, yt, batch_size=64, device=CUDA, mean=mean, std=std, shuffle=False)
    result = tl.train_one_epoch(model, NoSyncAfterFirstBatch(train), opt, CUDA, progress=False)
    assert math.isfinite(result["loss"])
    assert 0.0 <= tl.evaluate(model, NoSyncAfterFirstBatch(test), CUDA)["accuracy"] <= 1.0


@pytest.mark.parametrize(("budget", "min_steps"), [(None, 1), (10, 20)], ids=["one-pass-per-epoch", "10-per-class"])
def test_run_arm_never_syncs_within_an_epoch(budget, min_steps, cifar_shaped, monkeypatch: pytest.MonkeyPatch) -> None:
    """All 600 labels: an epoch is one pass. 10 labels per class: an epoch is 10 passes over one batch of 100
    (``min_steps`` 20 over 2 epochs), and no pass after the first may sync either."""
    train_one_epoch = arms_module.train_one_epoch
    guarded: list[int] = []

    def guarded_epoch(model, loader, *args, **kwargs):
        guarded.append(len(loader))
        return train_one_epoch(model, NoSyncAfterFirstBatch(loader), *args, **kwargs)

    monkeypatch.setattr(arms_module, "train_one_epoch", guarded_epoch)
    profile = tl.get_profile("quick", target_epochs=2)
    settings = tl.CaseStudySettings.for_profile(profile, min_steps=min_steps)
    source = tl.LeNet(in_channels=3, image_size=32).to(CUDA)
    train, test = cifar_shaped
    row = tl.run_arm("finetune", source, train, test, budget=budget, seed=0, profile=profile, device=CUDA,
                     settings=settings)
    assert len(guarded) == 2 and row["steps"] == sum(guarded)
