"""Surgical fine-tuning: after a distribution shift, tune only the layer where the shift sits.

Lee et al. (2023) found that fine-tuning a *single* block of a pretrained network can beat
fine-tuning all of it, and that which block wins depends on the shift: an *input-level*
shift (the same classes, images that look different) is best repaired by the first layer,
an *output-level* shift (the same images, the classes renamed) by the last. Here the source
is the course's LeNet trained on real MNIST (``tl.train_source``); each target is MNIST with
one shift of ``SHIFT_KINDS`` (``tl.inverted``, ``tl.noisy``, ``tl.permuted_labels``) and a
small label budget. Each arm of ``SURGICAL_ARMS`` starts from the whole source network (its
head included: the classes are the same ten digits, or a renaming of them) and tunes only
its layers (``tl.freeze_all_but``).

The protocol is the course's: each arm's learning rate is chosen among ``lrs`` on a
validation split carved from the label budget (``tl.carve_validation``), the arm is then
trained once more on the whole budget at that rate, and the shifted test set is read once.
``surgical_experiment`` runs shifts × arms × seeds through ``tl.run_grid``.

Example:
    >>> import tlcourse as tl
    >>> tl.SURGICAL_ARMS["first layer"], list(tl.SHIFT_KINDS)
    (('conv1',), ['inverted', 'noisy', 'relabelled'])
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from .adapt import fine_tune_budget
from .config import Profile, get_profile
from .freezing import freeze_all_but
from .names import unknown_choice
from .results import results_dir
from .run_grid import run_grid
from .shifts import inverted, noisy, permuted_labels
from .sources import TrainedSource, data_fingerprint, source_tensors
from .splits import carve_validation, per_class_subset
from .train import accuracy_on

__all__ = ["SURGICAL_ARMS", "SHIFT_KINDS", "SurgicalSettings", "SURGICAL_SETTINGS", "surgical_settings",
           "shifted", "surgical_run", "surgical_experiment"]

# arm -> the LeNet layers it tunes (everything else stays as the source left it)
SURGICAL_ARMS: dict[str, tuple[str, ...]] = {
    "first layer": ("conv1",),
    "last layer": ("fc2",),
    "all layers": ("conv1", "conv2", "fc1", "fc2"),
}
# shift -> what changes between the source's data and the target's
SHIFT_KINDS: dict[str, str] = {
    "inverted": "input: every image is its negative (255 - pixel), the labels are the same",
    "noisy": "input: Gaussian noise added to every pixel, the labels are the same",
    "relabelled": "output: the same images, every class renamed to another (a derangement of the ten digits)",
}


@dataclass(frozen=True)
class SurgicalSettings:
    """How big the surgical fine-tuning runs are; the learning rate is the one choice tuned (on validation)."""

    per_class: int = 20  # the label budget: labelled target images per class
    val_per_class: int = 5  # of those, carved out per class to choose each arm's learning rate
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)  # Adam learning rates tried per arm
    epochs: int = 20  # passes over the labelled images (at least min_steps steps)
    min_steps: int = 200  # Adam steps per training at least
    batch_size: int = 32
    noise_std: float = 0.5  # of the noisy shift, as a fraction of the 0-255 range
    shift_seed: int = 0  # which noise and which relabelling: the target task itself, the same for every run
    seeds: tuple[int, ...] = (0, 1, 2)  # draw the label budget, its validation split and the batch order (cpu: 5)


SURGICAL_SETTINGS = {
    # CI: every shift, arm and learning rate runs, too briefly for the numbers to mean much.
    "quick": SurgicalSettings(lrs=(1e-2, 3e-2), epochs=5, min_steps=30, seeds=(0, 1)),
    # A laptop's CPU: the chapter's table.
    "cpu": SurgicalSettings(seeds=(0, 1, 2, 3, 4)),
    # A GPU: more seeds.
    "full": SurgicalSettings(seeds=tuple(range(10))),
}


def surgical_settings(profile: Profile | None = None) -> SurgicalSettings:
    """The surgical fine-tuning settings for ``profile`` (default ``get_profile()``)."""
    return SURGICAL_SETTINGS[(profile or get_profile()).name]


def shifted(kind: str, x: torch.Tensor, y: torch.Tensor, *, settings: SurgicalSettings,
            split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of the target task ``kind`` (a key of ``SHIFT_KINDS``).

    The relabelling is the same for ``split="train"`` and ``"test"`` (it *is* the task); the
    noise is drawn anew for each split (``shift_seed``, and ``shift_seed + 1`` for the test).

    Example:
        >>> x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
        >>> shifted("inverted", x, y, settings=SurgicalSettings(), split="test")[0].max().item()
        255
    """
    if kind not in SHIFT_KINDS:
        raise ValueError(unknown_choice("shift", kind, SHIFT_KINDS))
    if split not in ("train", "test"):
        raise ValueError(f"split is 'train' or 'test'; got {split!r}")
    if kind == "inverted":
        return inverted(x), y
    if kind == "noisy":
        return noisy(x, std=settings.noise_std, seed=settings.shift_seed + (split == "test")), y
    return x, permuted_labels(y, seed=settings.shift_seed, num_classes=10)


def _tuned(source: nn.Module, layers: tuple[str, ...], x: torch.Tensor, y: torch.Tensor, *, lr: float,
           settings: SurgicalSettings, seed: int, device: torch.device) -> nn.Module:
    """A copy of ``source`` with only ``layers`` trained on ``(x, y)`` (Adam, ``tl.fine_tune_budget``)."""
    model = copy.deepcopy(source).to(device)
    freeze_all_but(model, list(layers))
    fine_tune_budget(model, x, y, epochs=settings.epochs, min_steps=settings.min_steps,
                     batch_size=settings.batch_size, lr=lr, seed=seed, device=device)
    return model


def surgical_run(source: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 *, arm: str, seed: int, settings: SurgicalSettings,
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """One arm on one shifted target: choose its learning rate on validation, train on the budget, test once.

    Args:
        source: the trained 1x28x28 LeNet (it is copied, never changed).
        train, test: the shifted target's uint8 images and labels (``shifted``).
        arm: a key of ``SURGICAL_ARMS``.
        seed: draws the label budget, its validation split and the batch order.
        settings: budget, learning rates and training length.
        device: where to train.

    Returns:
        ``method`` (the arm), ``seed``, ``accuracy`` (test), ``lr`` (chosen), ``val_accuracy`` (at that rate),
        ``trainable`` (parameters the arm tunes), ``labels``.
    """
    if arm not in SURGICAL_ARMS:
        raise ValueError(unknown_choice("surgical arm", arm, SURGICAL_ARMS))
    device = torch.device(device)
    layers = SURGICAL_ARMS[arm]
    x, y = train
    budget = per_class_subset(y, settings.per_class, seed=seed)
    x, y = x[budget], y[budget]
    fit_idx, val_idx = carve_validation(y, per_class=settings.val_per_class, seed=seed)
    scores = {lr: accuracy_on(_tuned(source, layers, x[fit_idx], y[fit_idx], lr=lr, settings=settings, seed=seed,
                                   device=device), x[val_idx], y[val_idx], device)
              for lr in settings.lrs}
    lr = max(scores, key=scores.get)  # the first of the best, in the order of settings.lrs
    model = _tuned(source, layers, x, y, lr=lr, settings=settings, seed=seed, device=device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"method": arm, "seed": seed, "accuracy": accuracy_on(model, *test, device), "lr": lr,
            "val_accuracy": scores[lr], "trainable": trainable, "labels": len(y)}


def surgical_experiment(source: TrainedSource, *, settings: SurgicalSettings, shifts: tuple[str, ...] | None = None,
                        arms: tuple[str, ...] | None = None, profile: Profile | None = None,
                        device: torch.device | str = "cpu", path: str | Path | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """Every shift × arm × seed of ``settings.seeds``; saved after each run and resumed (``tl.run_grid``).

    The targets are the source's own dataset (MNIST, at the source's input shape, the
    profile's training and test images) with each shift applied: the source saw the clean
    training images, the target's budget is drawn from their shifted versions, and the
    test images are shifted test digits it never saw.

    Args:
        source: ``tl.train_source("mnist")``.
        settings: from ``surgical_settings``.
        shifts, arms: default all of ``SHIFT_KINDS`` and ``SURGICAL_ARMS``.
        profile: which images (default ``get_profile()``).
        device: where to train.
        path: the results file; default ``results/surgical-<fingerprint>.json``.
        progress: show a progress bar.

    Returns:
        one row per run: ``shift`` and ``surgical_run``'s columns, and ``seconds``.
    """
    shifts, arms = shifts or tuple(SHIFT_KINDS), arms or tuple(SURGICAL_ARMS)
    for kind in shifts:
        if kind not in SHIFT_KINDS:
            raise ValueError(unknown_choice("shift", kind, SHIFT_KINDS))
    for arm in arms:
        if arm not in SURGICAL_ARMS:
            raise ValueError(unknown_choice("surgical arm", arm, SURGICAL_ARMS))
    p = profile or get_profile()
    c, s, _ = source.input_shape
    clean = {split: source_tensors(source.dataset, p, train=split == "train", in_channels=c, image_size=s)
             for split in ("train", "test")}
    key = data_fingerprint(*clean["train"], *clean["test"], source.fingerprint, repr(settings))
    path = Path(path) if path is not None else results_dir() / f"surgical-{key}.json"
    targets: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    def run(kind: str, arm: str, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        if kind not in targets:
            targets[kind] = {split: shifted(kind, *clean[split], settings=settings, split=split) for split in clean}
        row = surgical_run(source.model, targets[kind]["train"], targets[kind]["test"], arm=arm, seed=seed,
                           settings=settings, device=device)
        return {"shift": kind, **row, "seconds": round(time.perf_counter() - started, 2)}

    plan = [(kind, arm, seed) for kind in shifts for seed in settings.seeds for arm in arms]
    return pd.DataFrame(run_grid(plan, run, key=lambda r: (r["shift"], r["method"], r["seed"]), fingerprint=key,
                                 path=path, progress=progress))
