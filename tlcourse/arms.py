"""The case study's arms: how one CIFAR-10 model starts, and one run of it on a label budget.

``build_arm`` builds the document's LeNet for CIFAR-10 from scratch or from the MNIST
source's weights (``finetune``, ``frozen``); ``run_arm`` trains one arm on ``k`` labelled
images per class with ``CaseStudySettings`` and evaluates it on the CIFAR-10 *test* set.
The ``imagenet`` arm starts from a real ImageNet-pretrained network instead
(``tlcourse.imagenet_arm``). Data stay on the device as tensors (``DeviceLoader``); on
CUDA ``train_one_epoch`` uses mixed precision and reads the loss once per epoch.

Example:
    >>> model, report = build_arm("finetune", LeNet(in_channels=3, image_size=32))
    >>> report.skipped
    ['fc2.weight', 'fc2.bias']
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import Profile, seed_everything
from .data import dataset_tensors, load_dataset
from .splits import per_class_subset
from .freezing import freeze, trainable_parameters
from .imagenet_arm import run_imagenet_arm
from .loaders import DeviceLoader, flip_and_crop
from .models import LeNet
from .pretrained import PretrainedSource
from .train import evaluate, train_one_epoch
from .transfer import TransferReport, transfer_weights

__all__ = ["CaseStudySettings", "ARMS", "LENET_ARMS", "cifar_tensors", "build_arm", "run_arm"]


@dataclass(frozen=True)
class CaseStudySettings:
    """The recipe of the case study's target runs (the source's is ``SOURCE_RECIPE``); the profile sets sizes."""

    source_channels: int = 3  # source input: 3x32x32 padded digits, so every layer's shape fits CIFAR-10
    source_size: int = 32  # image side the source sees (28 = the document's raw digits)
    target_lr: float = 0.01  # SGD learning rate on CIFAR-10, the same for every arm (cosine decay)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 penalty
    min_steps: int = 500  # each target run takes at least this many SGD steps (10 labels/class = 1 batch/epoch)
    augment: bool = True  # random flips and 2-pixel shifts of the CIFAR-10 training images
    channels_last: bool | None = None  # channels-last data and weights; None = on CPU and CUDA (not MPS)

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> CaseStudySettings:
        """The settings a profile uses: ``quick`` runs only a few steps per run.

        Example:
            >>> CaseStudySettings.for_profile(tl.get_profile("quick")).min_steps
            20
        """
        base = {"quick": {"min_steps": 20}}.get(profile.name, {})
        return cls(**{**base, **overrides})

    def use_channels_last(self, device: torch.device) -> bool:
        """Whether to store data and weights channels-last on ``device``.

        On two CPU cores it made LeNet's training steps about 20-30% faster (its
        max-pooling and convolutions run faster in that layout); on CUDA it is the layout
        mixed-precision convolutions prefer.
        """
        return device.type in ("cpu", "cuda") if self.channels_last is None else self.channels_last


# arm -> how its CIFAR-10 model starts and what it trains
ARMS: dict[str, str] = {
    "scratch": "random initialisation, every layer trained",
    "finetune": "source weights (new head), every layer trained",
    "frozen": "source weights (new head), conv1+conv2 frozen: only fc1 and fc2 trained",
    "imagenet": "a real ImageNet-pretrained network, inputs resized, new head learning 10x faster "
                "(the recipe: ImageNetArmSettings)",
}
LENET_ARMS = ("scratch", "finetune", "frozen")  # the arms that train the document's LeNet (build_arm)



def cifar_tensors(profile: Profile, *, train: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as uint8 ``(N, 3, 32, 32)`` images and int64 labels, subset as the profile says."""
    ds = load_dataset("cifar10", train=train, profile=profile)
    return dataset_tensors(ds, limit=profile.train_size if train else profile.test_size, seed=seed)


def build_arm(arm: str, source: nn.Module | None, *, seed: int = 0) -> tuple[LeNet, TransferReport | None]:
    """The CIFAR-10 LeNet of one LeNet arm, before training: ``scratch``, ``finetune`` or ``frozen``.

    The source's digit head (``fc2``) is never copied: digit 3 has nothing to do with
    class 3 of CIFAR-10, so every arm starts with a fresh head, seeded by ``seed``.

    Returns:
        ``(model, report)``; ``report`` is ``None`` for ``scratch``.

    Example:
        >>> model, report = build_arm("frozen", LeNet(in_channels=3, image_size=32))
        >>> report.counts, trainable_parameters(model)[0].shape
        ({'copied': 6, 'adapted': 0, 'skipped': 2}, torch.Size([50, 500]))
    """
    if arm not in LENET_ARMS:
        what = "is not a LeNet arm (ImageNetArm builds it)" if arm in ARMS else "is an unknown arm"
        raise ValueError(f"{arm!r} {what}; build_arm builds {', '.join(LENET_ARMS)}")
    seed_everything(seed)
    model = LeNet(in_channels=3, image_size=32)
    if arm == "scratch":
        return model, None
    if source is None:
        raise ValueError(f"Arm {arm!r} needs a source model")
    report = transfer_weights(source, model, skip="fc2", adapt_first_conv="repeat")
    if arm == "frozen":
        freeze(model, ["conv1", "conv2"])
    return model, report


class _Steps:
    """Exactly ``steps`` batches, cycling through ``loader`` (each pass is a new permutation)."""

    def __init__(self, loader: DeviceLoader, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        done = 0
        while True:
            for batch in self.loader:
                yield batch
                done += 1
                if done == self.steps:
                    return


def run_arm(arm: str, source: nn.Module | PretrainedSource | None, train: tuple[torch.Tensor, torch.Tensor],
            test: tuple[torch.Tensor, torch.Tensor], *, budget: int | None, seed: int, profile: Profile,
            device: torch.device | str, settings: CaseStudySettings | None = None) -> dict[str, Any]:
    """Train one arm on a label budget of CIFAR-10 and evaluate it on the test images.

    Each seed draws its own ``budget`` images per class, initialises the head and
    orders the batches. A run has ``profile.target_epochs`` epochs of at least
    ``settings.min_steps / target_epochs`` steps each: with 10 labels per class an
    epoch of the data is one batch, so such an "epoch" passes over the data several times.

    Args:
        arm: ``"scratch"``, ``"finetune"``, ``"frozen"`` or ``"imagenet"`` (``run_imagenet_arm``, with
            ``ImageNetArmSettings.for_profile(profile)``; ``settings`` is not used).
        source: the trained 3x32x32 source model (ignored for ``scratch``); for ``imagenet``
            a real ImageNet network (``imagenet_source()``).
        train, test: uint8 images and labels (``cifar_tensors``).
        budget: labelled images per class; ``None`` uses every training image.
        seed: the run's seed.
        profile: epochs and batch size.
        device: where to train.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``. Inputs
            are in [0, 1], as the source saw its digits (``SOURCE_RECIPE``).

    Returns:
        one row of the results: ``arm``, ``budget`` (int or ``"all"``), ``labels``,
        ``seed``, ``test_acc``, ``train_acc``, ``epochs`` (passes over the labelled
        images), ``steps``, ``seconds``.
    """
    if arm == "imagenet":
        if not isinstance(source, PretrainedSource):
            raise ValueError("The imagenet arm's source is a real ImageNet network: pass tl.imagenet_source()")
        return run_imagenet_arm(source, train, test, budget=budget, seed=seed, profile=profile, device=device)
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    t0 = time.perf_counter()
    x, y = train
    if budget is not None:
        keep = per_class_subset(y, budget, seed=seed)
        x, y = x[keep], y[keep]
    model, _ = build_arm(arm, source, seed=seed)
    cl = settings.use_channels_last(device)
    model = model.to(device, memory_format=torch.channels_last) if cl else model.to(device)
    batch = min(profile.batch_size, len(y))
    loader = DeviceLoader(x, y, batch_size=batch, device=device, seed=seed, drop_last=True,
                          augment=flip_and_crop(2) if settings.augment else None, channels_last=cl)
    test_loader = DeviceLoader(*test, batch_size=max(profile.batch_size, 1024), device=device,
                               shuffle=False, channels_last=cl)
    epochs = profile.target_epochs
    per_epoch = max(len(loader), math.ceil(settings.min_steps / epochs))
    opt = torch.optim.SGD(trainable_parameters(model), lr=settings.target_lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    batches = _Steps(loader, per_epoch)
    for _ in range(epochs):  # one host-device sync per epoch (the loss), none per step
        last = train_one_epoch(model, batches, opt, device, progress=False)
        sched.step()
    test_acc = evaluate(model, test_loader, device)["accuracy"]
    steps = epochs * per_epoch
    return {"arm": arm, "budget": "all" if budget is None else int(budget), "labels": len(y), "seed": seed,
            "test_acc": test_acc, "train_acc": last["accuracy"], "epochs": round(steps * batch / len(y), 2),
            "steps": steps, "seconds": round(time.perf_counter() - t0, 3)}
