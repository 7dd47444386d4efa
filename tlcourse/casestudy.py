"""The case study MNIST -> CIFAR-10: the experiment's arms, one run, the whole study.

The document's recipe, done so that it runs and measures something:

1. ``source_model`` (``tlcourse.source``) trains ``LeNet`` on MNIST, or loads its checkpoint.
2. ``run_arm`` trains one CIFAR-10 model, from scratch or from the source's weights, on
   a label budget of ``k`` images per class, and evaluates it on the CIFAR-10 *test* set.
   The ``imagenet`` arm starts from a real ImageNet-pretrained network instead, the
   realistic source for CIFAR-10 (``tlcourse.imagenet_arm``).
3. ``run_case_study`` runs every arm x budget x seed and returns a results dict, the
   same one ``python -m tlcourse casestudy`` (``tlcourse.casestudy_cli``) writes as
   ``results.json`` after every run (its schema, resuming, reading: ``tlcourse.results``).

Data stay on the device as tensors (``DeviceLoader``); on CUDA ``train_one_epoch``
uses mixed precision and the loss is read once per epoch, not once per step.

Example:
    >>> model, report = build_arm("finetune", LeNet(in_channels=3, image_size=32))
    >>> report.skipped
    ['fc2.weight', 'fc2.bias']
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from .adapt import _fingerprint
from .config import Profile, seed_everything
from .data import dataset_tensors, load_dataset, per_class_subset
from .freezing import freeze, trainable_parameters
from .imagenet_arm import ImageNetArm, ImageNetArmSettings, run_imagenet_arm
from .loaders import DeviceLoader, channel_stats, flip_and_crop
from .models import LeNet
from .pretrained import ImageNetUnavailableError, PretrainedSource, imagenet_source
from .session import dataset_title
from .source import CaseStudySettings, _standin_names, source_checkpoint_path, source_model
from .train import evaluate, train_one_epoch
from .transfer import TransferReport, transfer_weights

__all__ = [
    "RESULTS_SCHEMA",
    "ARMS",
    "LENET_ARMS",
    "cifar_tensors",
    "build_arm",
    "run_arm",
    "run_case_study",
]

RESULTS_SCHEMA = "tlcourse-casestudy-results-v1"  # what run_case_study returns; tlcourse.results reads it

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
            device: torch.device | str, settings: CaseStudySettings | None = None,
            stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Train one arm on a label budget of CIFAR-10 and evaluate it on the test images.

    Each seed draws its own ``budget`` images per class, initialises the head and
    orders the batches. A run has ``profile.target_epochs`` epochs of at least
    ``settings.min_steps / target_epochs`` steps each: with 10 labels per class an
    epoch of the data is one batch, so such an "epoch" passes over the data several times.

    Args:
        arm: ``"scratch"``, ``"finetune"``, ``"frozen"`` or ``"imagenet"`` (``run_imagenet_arm``, with
            ``ImageNetArmSettings.for_profile(profile)``; ``settings`` and ``stats`` are not used).
        source: the trained 3x32x32 source model (ignored for ``scratch``); for ``imagenet``
            a real ImageNet network (``imagenet_source()``).
        train, test: uint8 images and labels (``cifar_tensors``).
        budget: labelled images per class; ``None`` uses every training image.
        seed: the run's seed.
        profile: epochs and batch size.
        device: where to train.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``.
        stats: per-channel mean and std for normalising; default ``channel_stats`` of all
            training images (they need no labels).

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
    mean, std = stats if stats is not None else channel_stats(train[0])
    model, _ = build_arm(arm, source, seed=seed)
    cl = settings.use_channels_last(device)
    model = model.to(device, memory_format=torch.channels_last) if cl else model.to(device)
    batch = min(profile.batch_size, len(y))
    loader = DeviceLoader(x, y, batch_size=batch, device=device, mean=mean, std=std, seed=seed, drop_last=True,
                          augment=flip_and_crop(2) if settings.augment else None, channels_last=cl)
    test_loader = DeviceLoader(*test, batch_size=max(profile.batch_size, 1024), device=device, mean=mean, std=std,
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


def _budget_list(profile: Profile, budgets: Sequence[int | str | None] | None) -> list[int | None]:
    """Budgets as ints, ``None`` meaning all labels; default: the profile's, plus all."""
    if budgets is None:
        return [*profile.label_budgets, None]
    return [None if b in (None, "all") else int(b) for b in budgets]


def _arm_problem(arms: Sequence[str]) -> str | None:
    """``unknown arm 'fintune' (did you mean 'finetune'?); choose from ...`` for the first unknown arm, else ``None``."""
    for arm in arms:
        if arm not in ARMS:
            near = difflib.get_close_matches(str(arm), ARMS, n=1)
            return (f"unknown arm {arm!r}{f' (did you mean {near[0]!r}?)' if near else ''}; "
                    f"choose from {', '.join(ARMS)}")
    return None


def _check_grid(arms: Sequence[str], budgets: Sequence[int | None], seeds: Sequence[int]) -> None:
    """Raise ``ValueError`` for an empty list, an unknown arm (naming the nearest) or a budget below 1."""
    for what, values in (("arms", arms), ("budgets", budgets), ("seeds", seeds)):
        if not values:
            raise ValueError(f"No {what} given: the study needs at least one")
    problem = _arm_problem(arms)
    if problem:
        raise ValueError(problem[0].upper() + problem[1:])
    bad = [b for b in budgets if b is not None and b < 1]
    if bad:
        raise ValueError(f"Label budgets are images per class and must be at least 1; got {bad}")


def run_case_study(profile: Profile, device: torch.device | str, *, budgets: Sequence[int | str | None] | None = None,
                   seeds: Sequence[int] | None = None, arms: Sequence[str] = tuple(ARMS),
                   settings: CaseStudySettings | None = None, retrain_source: bool = False,
                   log: Callable[[str], None] | None = print,
                   data: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
                   resume: Callable[[dict[str, Any]], Sequence[Mapping[str, Any]]] | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None,
                   imagenet: PretrainedSource | None = None,
                   imagenet_settings: ImageNetArmSettings | None = None) -> dict[str, Any]:
    """Run every arm x budget x seed; return the results dict (the schema of ``results.json``).

    Arguments are checked before anything is trained. With ``resume``, runs finished
    earlier are taken over instead of computed again; with ``on_progress``, the results
    so far can be saved after every run (``python -m tlcourse casestudy`` does both).

    Args:
        profile: sizes, epochs, default budgets and seeds.
        device: where to train.
        budgets: labels per class; ``"all"`` or ``None`` for the whole training set.
            Default: ``profile.label_budgets`` plus all.
        seeds: default ``profile.seeds``.
        arms: a subset of ``ARMS``.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``.
        retrain_source: train the source even if its checkpoint exists.
        log: called with one line per run; ``None`` is silent.
        data: CIFAR-10 ``(train, test)`` as ``cifar_tensors`` returns them; default: loaded here.
        resume: called once, before any training, with the metadata the study will write;
            returns the finished runs to reuse (``tlcourse.results.reusable_runs``), or raises to refuse.
        on_progress: called with the results so far (``metadata.complete`` false) after each new run.
        imagenet: the ``imagenet`` arm's network; default ``imagenet_source()`` (only if that arm runs).
        imagenet_settings: its recipe; default ``ImageNetArmSettings.for_profile(profile)``.

    Returns:
        ``{"schema", "metadata": {...}, "runs": [row, ...]}``, rows as ``run_arm`` returns, in
        the order budgets x seeds x arms.

    Raises:
        ValueError: an unknown arm, an empty list, a budget below 1.
        ImageNetUnavailableError: the ``imagenet`` arm is asked for, but no real ImageNet network is here.
        CaseStudyInterrupted: Ctrl-C while the source model trains.

    Example:
        >>> run_case_study(tl.get_profile("quick"), "cpu", arms=["scratch", "fintune"])
        Traceback (most recent call last):
        ...
        ValueError: Unknown arm 'fintune' (did you mean 'finetune'?); choose from scratch, finetune, frozen, imagenet
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    budget_list = _budget_list(profile, budgets)
    seeds, arms = list(profile.seeds if seeds is None else seeds), list(dict.fromkeys(arms))
    _check_grid(arms, budget_list, seeds)
    say = log or (lambda _: None)
    if "imagenet" in arms:  # before any data are loaded or anything is trained
        imagenet = imagenet if imagenet is not None else imagenet_source()
        if not imagenet.real:
            raise ImageNetUnavailableError(f"The imagenet arm needs a real ImageNet-pretrained network: "
                                           f"{imagenet.message} Or leave the arm out: arms={list(LENET_ARMS)}.")
    train, test = data if data is not None else (cifar_tensors(profile, train=True),
                                                 cifar_tensors(profile, train=False))
    inet = ImageNetArm(imagenet, train, test, profile=profile, device=device, settings=imagenet_settings) \
        if "imagenet" in arms else None
    grid = [(arm, "all" if b is None else b, seed) for b in budget_list for seed in seeds for arm in arms]
    meta: dict[str, Any] = {
        "profile": profile.name,
        "profile_fields": dataclasses.asdict(profile),
        "standins": _standin_names(),  # of MNIST and CIFAR-10, those that are generated stand-ins
        "data": dataset_title("mnist") + " -> " + dataset_title("cifar10"),
        "data_fingerprint": _fingerprint(*train, *test),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arms": arms,
        "budgets": ["all" if b is None else b for b in budget_list],
        "seeds": seeds,
        "settings": dataclasses.asdict(settings),
        "train_images": len(train[1]),
        "test_images": len(test[1]),
        "source": None,
        "imagenet_arm": inet.describe() if inet is not None else None,
        "timings": {"source_s": 0.0, "target_s": 0.0, "total_s": 0.0},
        "complete": False,
        "resumed_runs": 0,
    }
    finished: dict[tuple, Mapping[str, Any]] = {}
    for row in resume(json.loads(json.dumps(meta))) if resume is not None else ():
        finished.setdefault((row["arm"], row["budget"], row["seed"]), row)
    finished = {k: finished[k] for k in grid if k in finished}
    meta["resumed_runs"] = len(finished)
    if finished:
        rest = len(grid) - len(finished)
        say(f"{len(finished)} of {len(grid)} runs already done: " + (f"computing the other {rest}" if rest else
                                                                    "nothing left to compute"))
    t0 = time.perf_counter()
    source = None
    if any(a in ("finetune", "frozen") for a in arms):
        source, history = source_model(profile, device, in_channels=settings.source_channels,
                                       image_size=settings.source_size, retrain=retrain_source,
                                       settings=settings, verbose=log is not None)
        meta["source"] = {
            "input": f"{settings.source_channels}x{settings.source_size}x{settings.source_size}",
            "checkpoint": str(source_checkpoint_path(profile, in_channels=settings.source_channels,
                                                     image_size=settings.source_size)),
            "epochs": history.epochs, "test_acc": history.test_acc[-1],
            "train_seconds": round(sum(history.seconds), 2), "history": history.to_dict()}
    source_s, t1 = time.perf_counter() - t0, time.perf_counter()
    stats = channel_stats(train[0])

    def results(complete: bool) -> dict[str, Any]:
        meta["timings"] = {"source_s": round(source_s, 2), "target_s": round(time.perf_counter() - t1, 2),
                           "total_s": round(time.perf_counter() - t_start, 2)}
        meta["complete"] = complete
        if inet is not None:
            meta["imagenet_arm"]["frozen_outputs_s"] = round(inet.frozen_seconds, 2)
        return {"schema": RESULTS_SCHEMA, "metadata": dict(meta), "runs": [dict(finished[k]) for k in grid
                                                                          if k in finished]}

    for arm, budget, seed in grid:
        if (arm, budget, seed) in finished:
            continue
        b = None if budget == "all" else budget
        row = inet.run(budget=b, seed=seed) if arm == "imagenet" else \
            run_arm(arm, source, train, test, budget=b, seed=seed, profile=profile, device=device,
                    settings=settings, stats=stats)
        finished[(arm, budget, seed)] = row
        say(f"[{len(finished):3d}/{len(grid)}] {arm:8s} budget {str(row['budget']):>5s} seed {seed}: "
            f"test accuracy {row['test_acc']:.1%} ({row['steps']} steps, {row['seconds']:.1f} s)")
        if on_progress is not None:
            on_progress(results(complete=False))
    return results(complete=True)
