"""Chapter 5's ImageNet arm: a real ImageNet-pretrained network fine-tuned on the CIFAR-10 budgets.

The realistic source for CIFAR-10 (``imagenet_source``: torchvision's ResNet-18 weights, else
the offline EfficientNet-Lite0, an unofficial conversion of Google's checkpoint), trained the
way a pretrained network is fine-tuned:

* its inputs are resized to ``ImageNetArmSettings.size`` and normalised with the mean and
  std its weights expect (``PretrainedSource.loader``);
* a new 10-class head learns ``head_lr_mult`` (10) times faster than the pretrained layers;
* augmentation: random flips and 2-pixel shifts (``flip_and_crop``) when every layer is
  trained. On a CPU only the last block and the head are trained (``trained="last"``): the
  frozen layers' outputs are computed once per image and per mirror image and reused by
  every run and seed, so there the augmentation is the flips alone.

Per profile: ``quick`` 32 px and ``cpu`` 64 px, last block and head; ``full`` (a GPU) 224 px,
every layer. The same budgets and seeds as the LeNet arms, and each seed's own labelled images.

Example:
    >>> s = ImageNetArmSettings.for_profile(tl.get_profile("cpu"))
    >>> s.size, s.trained
    (64, 'last')
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet

from .config import Profile, seed_everything
from .splits import per_class_subset
from .freezing import param_groups
from .loaders import flip_and_crop
from .models import replace_head
from .names import unknown_choice
from .pretrained import ImageNetUnavailableError, PretrainedSource, imagenet_input_size
from .train import evaluate, train_one_epoch

__all__ = ["TRAINED_PARTS", "ImageNetArmSettings", "network_pieces", "ImageNetArm", "run_imagenet_arm"]

# ImageNetArmSettings.trained -> what is trained (everything before it stays frozen)
TRAINED_PARTS: dict[str, str] = {
    "all": "every layer",
    "last": "the last block and the head",
    "head": "only the new head (frozen ImageNet features)",
}


@dataclass(frozen=True)
class ImageNetArmSettings:
    """The ImageNet arm's recipe; ``for_profile`` picks what two CPU cores or a GPU can afford."""

    size: int = 224  # side of the network's input: CIFAR-10's 32 px images are resized to it
    trained: str = "all"  # a key of TRAINED_PARTS
    lr: float = 0.01  # SGD learning rate of the pretrained layers that are trained (cosine decay)
    head_lr_mult: float = 10.0  # the new head learns this many times faster
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int | None = None  # None: the profile's target_epochs
    min_steps: int = 500  # each run takes at least this many SGD steps
    augment: bool = True  # flips and 2-pixel shifts (flips only when the frozen layers' outputs are cached)

    def __post_init__(self) -> None:
        if self.trained not in TRAINED_PARTS:
            raise ValueError("trained: " + unknown_choice("part", self.trained, TRAINED_PARTS))
        if self.size < 16 or (self.epochs is not None and self.epochs < 1) or self.min_steps < 1:
            raise ValueError(f"size must be at least 16 and epochs, min_steps at least 1; got size={self.size}, "
                             f"epochs={self.epochs}, min_steps={self.min_steps}")

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> ImageNetArmSettings:
        """The settings a profile uses: quick 32 px and cpu 64 px, last block; full 224 px, every layer.

        Example:
            >>> ImageNetArmSettings.for_profile(tl.get_profile("full")).trained
            'all'
        """
        base = {"quick": {"trained": "last", "min_steps": 20},
                "cpu": {"trained": "last", "epochs": 2, "min_steps": 150},
                "full": {"trained": "all", "epochs": 10}}.get(profile.name, {})
        return cls(**{"size": imagenet_input_size(profile), **base, **overrides})

    def describe(self) -> str:
        """One line: what is trained, at which size, with which learning rates and augmentation."""
        aug = ("flips" if self.trained != "all" else "flips and 2-pixel shifts") if self.augment else "none"
        return (f"{TRAINED_PARTS[self.trained]} trained at {self.size}x{self.size} px; lr {self.lr:g}, new head "
                f"{self.head_lr_mult:g}x faster; augmentation: {aug}")


class _DropConnect(nn.Module):
    """An EfficientNet block with the drop-connect rate its position gives it, as the network's own forward."""

    def __init__(self, block: nn.Module, rate: float) -> None:
        super().__init__()
        self.block, self.rate = block, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.rate or None)


def network_pieces(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network as named pieces that, run in order, are its forward pass: stem, blocks, pooling, ``fc``.

    The pieces share the model's modules (and parameters). Supported: torchvision's ResNets
    and EfficientNet-Lite (``tlcourse.efficientnet``). The last piece is the head, ``fc``.

    Example:
        >>> [name for name, _ in network_pieces(tl.imagenet_model("resnet18"))][-4:]
        ['layer4_0', 'layer4_1', 'pool', 'fc']
    """
    if isinstance(model, ResNet):
        pieces = [("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))]
        for layer in ("layer1", "layer2", "layer3", "layer4"):
            pieces += [(f"{layer}_{i}", block) for i, block in enumerate(getattr(model, layer))]
        return pieces + [("pool", nn.Sequential(model.avgpool, nn.Flatten(1))), ("fc", model.fc)]
    if hasattr(model, "_blocks") and hasattr(model, "_conv_stem") and not model._global_params.local_pooling:
        rate, n = model._global_params.drop_connect_rate or 0.0, len(model._blocks)
        pieces = [("stem", nn.Sequential(model._conv_stem, model._bn0, model._swish))]
        pieces += [(f"block{i}", _DropConnect(b, rate * i / n)) for i, b in enumerate(model._blocks)]
        head = nn.Sequential(model._conv_head, model._bn1, model._swish, model._avg_pooling, nn.Flatten(1),
                             model._dropout)
        return pieces + [("conv_head", head), ("fc", model._fc)]
    raise ValueError(f"network_pieces supports torchvision ResNets and EfficientNet-Lite, not {type(model).__name__}")


def _cut(pieces: list[tuple[str, nn.Module]], trained: str) -> int:
    """Index of the first trained piece: 0 for "all", the last block for "last", the head for "head"."""
    if trained == "all":
        return 0
    if trained == "head":
        return len(pieces) - 1
    return max(i for i, (name, _) in enumerate(pieces) if name.startswith(("layer", "block")))


def _fast_layout(device: torch.device) -> torch.memory_format:
    """Channels-last on CPU and CUDA (measured on 2 cores, EfficientNet-Lite0 at 64 px: 3.4 vs 5.6 ms per image
    forward, and 48 vs 77 ms per training step of its last block and head)."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


class _FrozenOutputs:
    """The frozen layers' outputs for each image (and, if ``mirrored``, its mirror), computed once, when first needed.

    Stored in float16 on the device (half the memory); handed out as float32.
    """

    def __init__(self, trunk: nn.Module, source: PretrainedSource, images: torch.Tensor, *, size: int,
                 device: torch.device, mirrored: bool) -> None:
        self.trunk, self.source, self.images, self.size, self.device = trunk, source, images, size, device
        self.mirrored = mirrored
        self.values: dict[bool, torch.Tensor] = {}  # flipped? -> (N, ...) outputs
        self.done: dict[bool, torch.Tensor] = {}  # flipped? -> (N,) bool, on the CPU
        self.seconds = 0.0  # time spent computing them

    def _fill(self, idx: torch.Tensor, flip: bool) -> None:
        done = self.done.setdefault(flip, torch.zeros(len(self.images), dtype=torch.bool))
        todo = idx[~done[idx]].unique()
        if not len(todo):
            return
        t0 = time.perf_counter()
        x = self.images[todo].flip(-1) if flip else self.images[todo]
        cl = _fast_layout(self.device) == torch.channels_last
        with torch.no_grad():  # the indices ride along as the labels
            for xb, ib in self.source.loader(x, todo, size=self.size, device=self.device, batch_size=256,
                                             channels_last=cl):
                out = self.trunk(xb)
                if flip not in self.values:
                    self.values[flip] = torch.empty((len(self.images), *out.shape[1:]), dtype=torch.float16,
                                                    device=self.device)
                self.values[flip][ib] = out.to(torch.float16)
        done[todo] = True
        self.seconds += time.perf_counter() - t0

    def get(self, idx: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """Outputs for images ``idx``; with a generator (and ``mirrored``), each one mirrored or not at random."""
        idx = idx.cpu()
        flips = torch.rand(len(idx), generator=g) < 0.5 if g is not None and self.mirrored else \
            torch.zeros(len(idx), dtype=torch.bool)
        parts = [(flip, idx[flips == flip]) for flip in (False, True)]
        for flip, part in parts:
            if len(part):
                self._fill(part, flip)
        shape = next(iter(self.values.values())).shape[1:]
        out = torch.empty((len(idx), *shape), device=self.device)
        for flip, part in parts:
            if len(part):
                out[(flips == flip).to(self.device)] = self.values[flip][part.to(self.device)].float()
        return out.contiguous(memory_format=_fast_layout(self.device)) if out.ndim == 4 else out


def _batches(inputs: _FrozenOutputs, labels: torch.Tensor, keep: torch.Tensor, *, batch: int, seed: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches of the images ``keep``: each pass a new seeded permutation, no partial batch."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = keep[torch.randperm(len(keep), generator=g)]
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start:start + batch]
            yield inputs.get(idx, g), labels[idx].to(inputs.device)


def _loader_batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of a ``DeviceLoader`` (each pass is its next seeded permutation)."""
    while True:
        yield from loader


class _Take:
    """The next ``n`` items of an iterator, as a sized iterable (one epoch for ``train_one_epoch``)."""

    def __init__(self, it: Iterator, n: int) -> None:
        self.it, self.n = it, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator:
        for _ in range(self.n):
            yield next(self.it)


class ImageNetArm:
    """The ImageNet arm of one study: the network, the CIFAR-10 data, and the frozen layers' outputs its runs share.

    Args:
        source: a real ImageNet network (``imagenet_source()``); a stand-in or a missing one is refused.
        train, test: uint8 ``(N, 3, 32, 32)`` images and labels (``cifar_tensors``).
        profile: batch size, and the epochs when the settings leave them to it.
        device: where to train.
        settings: default ``ImageNetArmSettings.for_profile(profile)``.

    Raises:
        ImageNetUnavailableError: ``source`` is not a real ImageNet network; its message says how to get one.
    """

    def __init__(self, source: PretrainedSource, train: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor], *, profile: Profile, device: torch.device | str,
                 settings: ImageNetArmSettings | None = None) -> None:
        if source.model is None or not source.real:
            raise ImageNetUnavailableError(f"The imagenet arm needs a real ImageNet-pretrained network, and this is "
                                           f"not one: {source.message}")
        self.source, self.train, self.test, self.profile = source, train, test, profile
        self.device = torch.device(device)
        self.settings = settings or ImageNetArmSettings.for_profile(profile)
        self.cut = _cut(network_pieces(source.model), self.settings.trained)
        self.cached: tuple[_FrozenOutputs, _FrozenOutputs] | None = None
        if self.cut > 0:
            trunk = copy.deepcopy(nn.Sequential(OrderedDict(network_pieces(source.model)[:self.cut])))
            trunk = trunk.to(self.device, memory_format=_fast_layout(self.device)).eval().requires_grad_(False)
            self.cached = (_FrozenOutputs(trunk, source, train[0], size=self.settings.size, device=self.device,
                                          mirrored=self.settings.augment),
                           _FrozenOutputs(trunk, source, test[0], size=self.settings.size, device=self.device,
                                          mirrored=False))

    @property
    def frozen_seconds(self) -> float:
        """Time spent so far computing the frozen layers' outputs (0 when every layer is trained)."""
        return sum(c.seconds for c in self.cached) if self.cached else 0.0

    def describe(self) -> dict[str, Any]:
        """What the results file records about this arm: the network, its note, the recipe."""
        return {"network": self.source.name, "kind": self.source.kind, "weights_file": self.source.weights_file,
                "note": self.source.message, "recipe": self.settings.describe(),
                "settings": dataclasses.asdict(self.settings)}

    def run(self, *, budget: int | None, seed: int) -> dict[str, Any]:
        """Train one run on ``budget`` labelled images per class (``None``: all) and test it; a results row.

        The row is as ``run_arm``'s (``arm`` is ``"imagenet"``); its ``seconds`` include the
        frozen layers' outputs this run was the first to need.
        """
        s, t0 = self.settings, time.perf_counter()
        x, y = self.train
        keep = per_class_subset(y, budget, seed=seed) if budget is not None else torch.arange(len(y))
        seed_everything(seed)
        model = copy.deepcopy(self.source.model)
        replace_head(model, num_classes=int(y.max()) + 1)  # a fresh head, seeded by the run's seed
        tail = nn.Sequential(OrderedDict(network_pieces(model)[self.cut:]))
        tail = tail.to(self.device, memory_format=_fast_layout(self.device))
        batch = min(self.profile.batch_size, len(keep))
        epochs = s.epochs or self.profile.target_epochs
        per_epoch = max(len(keep) // batch, math.ceil(s.min_steps / epochs))
        opt = torch.optim.SGD(param_groups(tail, lr=s.lr, head_names="fc", head_lr_mult=s.head_lr_mult),
                              momentum=s.momentum, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        cl = _fast_layout(self.device) == torch.channels_last
        if self.cached is not None:
            train_inputs, test_inputs = self.cached
            batches = _batches(train_inputs, y, keep, batch=batch, seed=seed)
            n_test = len(self.test[1])
            test_batches = [(test_inputs.get(torch.arange(i, min(i + 1024, n_test))), self.test[1][i:i + 1024])
                            for i in range(0, n_test, 1024)]
        else:
            batches = _loader_batches(self.source.loader(
                x[keep], y[keep], size=s.size, device=self.device, batch_size=batch, shuffle=True, seed=seed,
                augment=flip_and_crop(2) if s.augment else None, drop_last=True, channels_last=cl))
            test_batches = self.source.loader(*self.test, size=s.size, device=self.device,
                                              batch_size=max(self.profile.batch_size, 256), channels_last=cl)
        for _ in range(epochs):
            last = train_one_epoch(tail, _Take(batches, per_epoch), opt, self.device, progress=False)
            sched.step()
        test_acc = evaluate(tail, test_batches, self.device)["accuracy"]
        steps = epochs * per_epoch
        return {"arm": "imagenet", "budget": "all" if budget is None else int(budget), "labels": len(keep),
                "seed": seed, "test_acc": test_acc, "train_acc": last["accuracy"],
                "epochs": round(steps * batch / len(keep), 2), "steps": steps,
                "seconds": round(time.perf_counter() - t0, 3)}


def run_imagenet_arm(source: PretrainedSource, train: tuple[torch.Tensor, torch.Tensor],
                     test: tuple[torch.Tensor, torch.Tensor], *, budget: int | None, seed: int, profile: Profile,
                     device: torch.device | str, settings: ImageNetArmSettings | None = None) -> dict[str, Any]:
    """One run of the ImageNet arm (``ImageNetArm(...).run``); a study shares one ``ImageNetArm`` across runs.

    Args:
        source: a real ImageNet network (``imagenet_source()``).
        train, test: uint8 images and labels (``cifar_tensors``).
        budget: labelled images per class; ``None`` uses every training image.
        seed: the run's seed (its labelled images, head initialisation and batch order).
        profile: batch size and epochs.
        device: where to train.
        settings: default ``ImageNetArmSettings.for_profile(profile)``.

    Example:
        >>> row = run_imagenet_arm(tl.imagenet_source(), train, test, budget=10, seed=0,  # doctest: +SKIP
        ...                        profile=tl.get_profile("quick"), device="cpu")
    """
    return ImageNetArm(source, train, test, profile=profile, device=device, settings=settings).run(budget=budget,
                                                                                                   seed=seed)
