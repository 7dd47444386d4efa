"""The case study MNIST -> CIFAR-10: source model, experiment arms, results file, command line.

The document's recipe, done so that it runs and measures something:

1. ``source_model`` trains ``LeNet`` on MNIST (or loads the checkpoint of an earlier run).
2. ``run_arm`` trains one CIFAR-10 model, from scratch or from the source's weights, on
   a label budget of ``k`` images per class, and evaluates it on the CIFAR-10 *test* set.
3. ``run_case_study`` runs every arm x budget x seed and returns a results dict, the
   same one ``python -m tlcourse casestudy`` writes as ``results.json``.

Data stay on the device as tensors (``DeviceLoader``); on CUDA ``train_one_epoch``
uses mixed precision and the loss is read once per epoch, not once per step.

Command line (``python -m tlcourse casestudy --help``)::

    python -m tlcourse casestudy --profile {quick,cpu,full} [--out DIR] [--budgets 10,100,all]
                                 [--seeds 0,1,2] [--arms scratch,finetune,frozen] [--device auto]
                                 [--retrain-source] [--quiet]

It writes ``results.json``, ``accuracy_vs_labels.png`` and ``source_history.png`` to
``--out`` (default ``results/casestudy-<profile>-<standin|real>/``). Bad arguments exit
with status 2 and a message. The schema of ``results.json``:

* ``schema``: ``"tlcourse-casestudy-results-v1"``.
* ``metadata``: ``profile`` (name), ``profile_fields`` (every field), ``standins`` (bool),
  ``data``, ``device``, ``device_name``, ``torch``, ``python``, ``created`` (UTC, ISO 8601),
  ``arms``, ``budgets`` (ints per class, ``"all"``), ``seeds``, ``settings``
  (``CaseStudySettings``), ``train_images``, ``test_images``, ``source`` (``input``,
  ``checkpoint``, ``epochs``, ``test_acc``, ``train_seconds``, ``history``; ``null``
  without transfer arms), ``timings`` (``source_s``, ``target_s``, ``total_s``).
* ``runs``: one object per run: ``arm``, ``budget`` (int or ``"all"``), ``labels``
  (labelled images used), ``seed``, ``test_acc`` and ``train_acc`` (0-1), ``epochs``
  (passes over the labelled images), ``steps`` (SGD steps), ``seconds``.

Example:
    >>> import tlcourse as tl
    >>> p = tl.get_profile("quick")
    >>> tl.source_checkpoint_path(p, in_channels=3, image_size=32).name  # doctest: +SKIP
    'lenet-mnist-3x32-quick-standin.pt'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from .config import PROFILES, Profile, choose_device, get_profile, seed_everything
from .data import DataUnavailableError, DeviceLoader, channel_stats, dataset_tensors, flip_and_crop, grey_to_rgb32, \
    load_dataset, per_class_subset, using_standins
from .models import LeNet
from .session import dataset_title
from .train import CheckpointError, History, evaluate, fit, load_checkpoint, save_checkpoint, train_one_epoch
from .transfer import TransferReport, freeze, trainable_parameters, transfer_weights

__all__ = [
    "CHECKPOINTS_ENV",
    "RESULTS_ENV",
    "RESULTS_SCHEMA",
    "ARMS",
    "CaseStudySettings",
    "checkpoint_dir",
    "results_dir",
    "source_checkpoint_path",
    "digit_tensors",
    "cifar_tensors",
    "source_model",
    "build_arm",
    "run_arm",
    "run_case_study",
    "default_results_path",
    "find_results",
    "summarize_results",
    "results_table",
    "plot_results",
    "compare_arms",
]

CHECKPOINTS_ENV = "TLCOURSE_CHECKPOINTS"
RESULTS_ENV = "TLCOURSE_RESULTS"
RESULTS_SCHEMA = "tlcourse-casestudy-results-v1"

# arm -> what it does to the CIFAR-10 LeNet before training
ARMS: dict[str, str] = {
    "scratch": "random initialisation, every layer trained",
    "finetune": "source weights (new head), every layer trained",
    "frozen": "source weights (new head), conv1+conv2 frozen: only fc1 and fc2 trained",
}


@dataclass(frozen=True)
class CaseStudySettings:
    """The training recipe of the case study; the run profile sets sizes, this sets the rest."""

    source_channels: int = 3  # source input: 3x32x32 padded digits, so every layer's shape fits CIFAR-10
    source_size: int = 32  # image side the source sees (28 = the document's raw digits)
    source_lr: float = 0.05  # SGD learning rate on MNIST (cosine decay over the source epochs)
    target_lr: float = 0.01  # SGD learning rate on CIFAR-10, the same for every arm
    momentum: float = 0.9  # SGD momentum, source and target
    weight_decay: float = 5e-4  # L2 penalty, source and target
    min_steps: int = 500  # each target run takes at least this many SGD steps (10 labels/class = 1 batch/epoch)
    augment: bool = True  # random flips and 2-pixel shifts of the CIFAR-10 training images
    channels_last: bool | None = None  # channels-last data and weights; None = on CPU and CUDA (not MPS)

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> CaseStudySettings:
        """The settings a profile uses: ``quick`` runs only a few steps per run.

        Example:
            >>> CaseStudySettings.for_profile(get_profile("quick")).min_steps
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


def _repo_dir(name: str) -> Path:
    """``<repository>/<name>`` when tlcourse runs from a checkout, else ``~/.cache/tlcourse/<name>``."""
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "tlcourse").is_dir():
        return repo / name
    return Path.home() / ".cache" / "tlcourse" / name


def checkpoint_dir() -> Path:
    """Where source models are saved: ``$TLCOURSE_CHECKPOINTS``, else ``checkpoints/`` next to ``data/``."""
    env = os.environ.get(CHECKPOINTS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else _repo_dir("checkpoints")


def results_dir() -> Path:
    """Where the case study writes results: ``$TLCOURSE_RESULTS``, else ``results/`` next to ``data/``."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else _repo_dir("results")


def _data_tag() -> str:
    return "standin" if using_standins() else "real"


def source_checkpoint_path(profile: Profile, *, in_channels: int = 3, image_size: int = 32) -> Path:
    """The source model's checkpoint file: its name says the input shape, the profile and the data.

    A model trained on stand-in digits must never be mistaken for one trained on MNIST,
    so ``standin`` or ``real`` is part of the name (and checked again on loading).

    Example:
        >>> source_checkpoint_path(get_profile("cpu"), in_channels=1, image_size=28).name  # doctest: +SKIP
        'lenet-mnist-1x28-cpu-real.pt'
    """
    return checkpoint_dir() / f"lenet-mnist-{in_channels}x{image_size}-{profile.name}-{_data_tag()}.pt"


def digit_tensors(profile: Profile, *, train: bool, in_channels: int = 1, image_size: int = 28,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as uint8 ``(N, C, S, S)`` tensors: raw 1x28x28, or padded to 32 (grey, or grey repeated as RGB).

    The profile's ``train_size`` / ``test_size`` pick a seeded random subset.

    Example:
        >>> x, y = digit_tensors(get_profile("quick"), train=False, in_channels=3, image_size=32)  # doctest: +SKIP
        >>> tuple(x.shape[1:])                                                                    # doctest: +SKIP
        (3, 32, 32)
    """
    if (in_channels, image_size) not in {(1, 28), (1, 32), (3, 32)}:
        raise ValueError(f"Digits come as 1x28, 1x32 or 3x32; got {in_channels}x{image_size}")
    ds = load_dataset("mnist", train=train, profile=profile)
    x, y = dataset_tensors(ds, limit=profile.train_size if train else profile.test_size, seed=seed)
    if image_size == 32:
        x = grey_to_rgb32(x)[:, :in_channels]  # (N, 3, 32, 32): 2-pixel border, grey repeated
    return x, y


def cifar_tensors(profile: Profile, *, train: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as uint8 ``(N, 3, 32, 32)`` images and int64 labels, subset as the profile says."""
    ds = load_dataset("cifar10", train=train, profile=profile)
    return dataset_tensors(ds, limit=profile.train_size if train else profile.test_size, seed=seed)


def _source_config(profile: Profile, settings: CaseStudySettings, in_channels: int, image_size: int,
                   seed: int) -> dict[str, Any]:
    """Everything a source model depends on; a checkpoint is reused only if all of it matches."""
    return {"standins": using_standins(), "in_channels": in_channels, "image_size": image_size, "seed": seed,
            "profile": dataclasses.asdict(profile), "lr": settings.source_lr, "momentum": settings.momentum,
            "weight_decay": settings.weight_decay}


def _n(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message)


def source_model(profile: Profile, device: torch.device | str, *, in_channels: int = 3, image_size: int = 32,
                 path: str | os.PathLike | None = None, retrain: bool = False, seed: int = 0,
                 settings: CaseStudySettings | None = None, progress: bool = False,
                 verbose: bool = True) -> tuple[LeNet, History]:
    """The MNIST source model: loaded from its checkpoint if one fits, else trained and saved.

    A checkpoint is reused only when it was written for the same profile, the same
    data (stand-in or real), input shape, seed and recipe, and finished all
    ``profile.source_epochs``; otherwise the model is trained again and the file
    replaced (atomically: an interrupted run leaves the old file or none).

    Args:
        profile: sizes and epochs (``train_size``, ``source_epochs``, ``batch_size``).
        device: where to train and where the returned model lives.
        in_channels, image_size: the input the source sees: 1x28 (the document's),
            1x32 or 3x32 (digits padded to CIFAR-10's size).
        path: the checkpoint; default ``source_checkpoint_path(...)``.
        retrain: train even if a fitting checkpoint exists.
        seed: seeds the initialisation and the batch order.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``.
        progress: show progress bars while training.
        verbose: print whether the model was loaded or trained, and where it is saved.

    Returns:
        ``(model, history)``: the model in eval mode on ``device``, and its training history.

    Example:
        >>> model, history = source_model(get_profile("quick"), "cpu", in_channels=1, image_size=28)  # doctest: +SKIP
    """
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    path = Path(path) if path is not None else source_checkpoint_path(profile, in_channels=in_channels,
                                                                       image_size=image_size)
    config = _source_config(profile, settings, in_channels, image_size, seed)
    model = LeNet(in_channels=in_channels, image_size=image_size)
    if path.exists() and not retrain:
        try:
            state = load_checkpoint(path, model=model)
            fits = state["extra"].get("config") == config and state["epoch"] == profile.source_epochs
        except CheckpointError as err:
            fits, state = False, None
            _say(verbose, f"Not using {path}: {err}")
        if fits:
            history = History.from_dict(state["history"])
            _say(verbose, f"Loaded the source model from {path} ({_n(state['epoch'], 'epoch')}, "
                          f"test accuracy {history.test_acc[-1]:.1%}); retrain=True trains it again.")
            return model.to(device).eval(), history
        if state is not None:
            _say(verbose, f"{path} was saved with other settings (profile, data or recipe): training again.")
    seed_everything(seed)
    model = LeNet(in_channels=in_channels, image_size=image_size).to(device)
    x, y = digit_tensors(profile, train=True, in_channels=in_channels, image_size=image_size, seed=seed)
    xt, yt = digit_tensors(profile, train=False, in_channels=in_channels, image_size=image_size, seed=seed)
    mean, std = channel_stats(x)
    cl = settings.use_channels_last(device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    train = DeviceLoader(x, y, batch_size=profile.batch_size, device=device, mean=mean, std=std, seed=seed,
                         channels_last=cl)
    test = DeviceLoader(xt, yt, batch_size=max(profile.batch_size, 1024), device=device, mean=mean, std=std,
                        shuffle=False, channels_last=cl)
    opt = torch.optim.SGD(model.parameters(), lr=settings.source_lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=profile.source_epochs)
    _say(verbose, f"Training the source model ({in_channels}x{image_size}x{image_size} digits, "
                  f"{_n(len(y), 'image')}, {_n(profile.source_epochs, 'epoch')}) on {device}...")
    history = fit(model, train, test, opt, epochs=profile.source_epochs, device=device, scheduler=sched,
                  progress=progress)
    save_checkpoint(path, model=model, epoch=profile.source_epochs, history=history,
                    extra={"config": config, "mean": mean, "std": std})
    _say(verbose, f"Trained in {sum(history.seconds):.1f} s, test accuracy {history.test_acc[-1]:.1%}; "
                  f"saved to {path}")
    return model.eval(), history


def build_arm(arm: str, source: nn.Module | None, *, seed: int = 0) -> tuple[LeNet, TransferReport | None]:
    """The CIFAR-10 LeNet of one arm, before training: ``scratch``, ``finetune`` or ``frozen``.

    The source's digit head (``fc2``) is never copied: digit 3 has nothing to do with
    class 3 of CIFAR-10, so every arm starts with a fresh head, seeded by ``seed``.

    Returns:
        ``(model, report)``; ``report`` is ``None`` for ``scratch``.

    Example:
        >>> model, report = build_arm("frozen", LeNet(in_channels=3, image_size=32))
        >>> report.counts, trainable_parameters(model)[0].shape
        ({'copied': 6, 'adapted': 0, 'skipped': 2}, torch.Size([50, 500]))
    """
    if arm not in ARMS:
        raise ValueError(f"Unknown arm {arm!r}; choose from {', '.join(ARMS)}")
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


def run_arm(arm: str, source: nn.Module | None, train: tuple[torch.Tensor, torch.Tensor],
            test: tuple[torch.Tensor, torch.Tensor], *, budget: int | None, seed: int, profile: Profile,
            device: torch.device | str, settings: CaseStudySettings | None = None,
            stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Train one arm on a label budget of CIFAR-10 and evaluate it on the test images.

    Each seed draws its own ``budget`` images per class, initialises the head and
    orders the batches. A run has ``profile.target_epochs`` epochs of at least
    ``settings.min_steps / target_epochs`` steps each: with 10 labels per class an
    epoch of the data is one batch, so such an "epoch" passes over the data several times.

    Args:
        arm: ``"scratch"``, ``"finetune"`` or ``"frozen"``.
        source: the trained 3x32x32 source model (ignored for ``scratch``).
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


def run_case_study(profile: Profile, device: torch.device | str, *, budgets: Sequence[int | str | None] | None = None,
                   seeds: Sequence[int] | None = None, arms: Sequence[str] = tuple(ARMS),
                   settings: CaseStudySettings | None = None, retrain_source: bool = False,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run every arm x budget x seed; return the results dict (the schema of ``results.json``).

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

    Returns:
        ``{"schema", "metadata": {...}, "runs": [row, ...]}``, rows as ``run_arm`` returns.
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    budget_list = _budget_list(profile, budgets)
    seeds = list(profile.seeds if seeds is None else seeds)
    say = log or (lambda _: None)
    t0 = time.perf_counter()
    source, source_history = None, None
    if any(a != "scratch" for a in arms):
        source, source_history = source_model(profile, device, in_channels=settings.source_channels,
                                              image_size=settings.source_size, retrain=retrain_source,
                                              settings=settings, verbose=log is not None)
    source_s = time.perf_counter() - t0
    train, test = cifar_tensors(profile, train=True), cifar_tensors(profile, train=False)
    stats = channel_stats(train[0])
    runs, t1 = [], time.perf_counter()
    total = len(budget_list) * len(seeds) * len(arms)
    for budget in budget_list:
        for seed in seeds:
            for arm in arms:
                row = run_arm(arm, source, train, test, budget=budget, seed=seed, profile=profile, device=device,
                              settings=settings, stats=stats)
                runs.append(row)
                say(f"[{len(runs):3d}/{total}] {arm:8s} budget {str(row['budget']):>5s} seed {seed}: "
                    f"test accuracy {row['test_acc']:.1%} ({row['steps']} steps, {row['seconds']:.1f} s)")
    meta = {
        "profile": profile.name,
        "profile_fields": dataclasses.asdict(profile),
        "standins": using_standins(),
        "data": dataset_title("mnist") + " -> " + dataset_title("cifar10"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arms": list(arms),
        "budgets": ["all" if b is None else b for b in budget_list],
        "seeds": seeds,
        "settings": dataclasses.asdict(settings),
        "train_images": len(train[1]),
        "test_images": len(test[1]),
        "source": None if source_history is None else {
            "input": f"{settings.source_channels}x{settings.source_size}x{settings.source_size}",
            "checkpoint": str(source_checkpoint_path(profile, in_channels=settings.source_channels,
                                                     image_size=settings.source_size)),
            "epochs": source_history.epochs, "test_acc": source_history.test_acc[-1],
            "train_seconds": round(sum(source_history.seconds), 2), "history": source_history.to_dict()},
        "timings": {"source_s": round(source_s, 2), "target_s": round(time.perf_counter() - t1, 2),
                    "total_s": round(time.perf_counter() - t_start, 2)},
    }
    return {"schema": RESULTS_SCHEMA, "metadata": meta, "runs": runs}


def default_results_path(profile: Profile) -> Path:
    """Where the command writes results by default: ``results/casestudy-<profile>-<standin|real>/results.json``."""
    return results_dir() / f"casestudy-{profile.name}-{_data_tag()}" / "results.json"


def find_results(profile: Profile, path: str | os.PathLike | None = None, *,
                 arms: Sequence[str] = tuple(ARMS)) -> dict[str, Any] | None:
    """The results the command wrote for this profile and data, or ``None`` if there are none that fit.

    Results count only if they were made with the same profile (all its fields), the
    same kind of data (stand-in or real) as now, and include every arm in ``arms``.

    Args:
        profile: the current run profile.
        path: the results file; default ``default_results_path(profile)``.
        arms: arms the results must contain.
    """
    path = Path(path) if path is not None else default_results_path(profile)
    try:
        results = json.loads(path.read_text())
        meta = results["metadata"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    fields = json.loads(json.dumps(dataclasses.asdict(profile)))  # tuples become lists, as in the file
    fits = (results.get("schema") == RESULTS_SCHEMA and meta.get("profile_fields") == fields
            and meta.get("standins") == using_standins() and set(arms) <= set(meta.get("arms", []))
            and results.get("runs"))
    return results if fits else None


def summarize_results(results: dict[str, Any]) -> Any:
    """One row per arm and budget: mean, standard deviation (over seeds) and count of the test accuracy.

    Returns a pandas DataFrame with columns ``arm, budget, labels, mean, std, n``, in
    the order of budgets and arms of the run.
    """
    import pandas as pd

    df = pd.DataFrame(results["runs"])
    df["budget"] = df["budget"].astype(str)
    g = df.groupby(["budget", "arm"], sort=False)
    out = g.agg(labels=("labels", "first"), mean=("test_acc", "mean"), std=("test_acc", "std"),
                n=("test_acc", "size")).reset_index()
    return out.fillna({"std": 0.0})


def results_table(results: dict[str, Any]) -> Any:
    """The results as a table to read: budgets down, arms across, "mean ± std" test accuracy in %."""
    s = summarize_results(results)
    s["cell"] = [f"{100 * m:.1f} ± {100 * d:.1f}" for m, d in zip(s["mean"], s["std"])]
    table = s.pivot(index="budget", columns="arm", values="cell")
    order = list(dict.fromkeys(s["budget"]))
    table = table.loc[order, [a for a in ARMS if a in set(s["arm"])]]
    table.index = [f"{b} per class" if b != "all" else "all labels" for b in order]
    n = int(s["n"].min())
    table.columns.name = f"test accuracy % (mean ± std over {n} seed{'s' if n > 1 else ''})"
    return table


def plot_results(results: dict[str, Any], *, title: str | None = None) -> Figure:
    """Test accuracy against the number of labelled images, one line per arm, ± std as a band."""
    import matplotlib.pyplot as plt

    s = summarize_results(results)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels = {"scratch": "from scratch", "finetune": "transferred, all layers trained",
              "frozen": "transferred, conv layers frozen"}
    for arm in [a for a in ARMS if a in set(s["arm"])]:
        d = s[s["arm"] == arm].sort_values("labels")
        ax.plot(d["labels"], 100 * d["mean"], "o-", label=f"{arm}: {labels[arm]}")
        ax.fill_between(d["labels"], 100 * (d["mean"] - d["std"]), 100 * (d["mean"] + d["std"]), alpha=0.2)
    ax.set_xscale("log")
    ticks = sorted(set(s["labels"]))
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled CIFAR-10 training images (log scale)")
    ax.set_ylabel(f"test accuracy (%), mean ± std over {int(s['n'].min())} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    meta = results["metadata"]
    tag = " (stand-in)" if meta.get("standins") else ""  # the data the results were measured on, not today's
    ax.set_title(title or f"MNIST{tag} → CIFAR-10{tag}, profile {meta.get('profile')}", fontsize=10)
    fig.tight_layout()
    return fig


def compare_arms(results: dict[str, Any], *, arm: str = "finetune", baseline: str = "scratch") -> list[str]:
    """Sentences comparing ``arm`` with ``baseline`` at each budget, worded from the numbers.

    A difference counts as measured only when it is larger than the two spreads
    (standard deviations over seeds) added together; otherwise it is "within the spread".
    """
    s = summarize_results(results)
    lines = []
    for budget in dict.fromkeys(s["budget"]):
        rows = s[s["budget"] == budget].set_index("arm")
        if arm not in rows.index or baseline not in rows.index:
            continue
        a, b = rows.loc[arm], rows.loc[baseline]
        diff, noise = a["mean"] - b["mean"], a["std"] + b["std"]
        what = "all labels" if budget == "all" else f"{budget} labels per class"
        if abs(diff) <= noise:
            points = round(100 * diff, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
            verdict = f"a difference of {points:+.1f} points, within the spread across seeds"
        else:
            verdict = f"{arm} is {'better' if diff > 0 else 'worse'} by {100 * abs(diff):.1f} points"
        lines.append(f"{what}: {arm} {100 * a['mean']:.1f}% ± {100 * a['std']:.1f} vs {baseline} "
                     f"{100 * b['mean']:.1f}% ± {100 * b['std']:.1f} ({int(a['n'])} seeds): {verdict}.")
    return lines


# --- command line: python -m tlcourse casestudy ---

def _parse_list(text: str, what: str, parser: argparse.ArgumentParser, *, allow_all: bool = False) -> list:
    out: list[int | str] = []
    for item in (t.strip() for t in text.split(",")):
        if allow_all and item.lower() == "all":
            out.append("all")
            continue
        try:
            value = int(item)
        except ValueError:
            parser.error(f"{what} must be whole numbers separated by commas{' (or all)' if allow_all else ''}; "
                         f"got {item!r} in {text!r}")
        if what == "--budgets" and value <= 0:
            parser.error(f"--budgets: a label budget is a number of images per class and must be positive; got {value}")
        if what == "--seeds" and value < 0:
            parser.error(f"--seeds must not be negative; got {value}")
        out.append(value)
    if not out:
        parser.error(f"{what} is empty")
    return list(dict.fromkeys(out))  # without repeats, in the order given


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tlcourse casestudy",
        description="Run the MNIST -> CIFAR-10 case study (source model, then every arm x label budget x seed) "
                    "and write results.json and plots.",
        epilog="Data follow TLCOURSE_DATA / TLCOURSE_STANDIN, checkpoints TLCOURSE_CHECKPOINTS. "
               "Example: python -m tlcourse casestudy --profile cpu --budgets 10,100,all --seeds 0,1,2")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="run profile (default: $TLCOURSE_PROFILE, else full with CUDA, else cpu)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: results/casestudy-<profile>-<standin|real>/)")
    p.add_argument("--budgets", default=None,
                   help="labelled images per class, comma-separated; 'all' = every label "
                        "(default: the profile's budgets, then all)")
    p.add_argument("--seeds", default=None, help="seeds, comma-separated (default: the profile's)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: the profile's)")
    p.add_argument("--retrain-source", action="store_true", help="train the source model even if its checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m tlcourse casestudy``: run the case study, write ``results.json`` and PNG plots."""
    parser = _parser()
    args = parser.parse_args(argv)
    profile = get_profile(args.profile) if args.profile else None
    if profile is None:
        try:
            profile = get_profile()
        except ValueError as err:  # a bad TLCOURSE_PROFILE
            parser.error(str(err))
    budgets = _parse_list(args.budgets, "--budgets", parser, allow_all=True) if args.budgets else None
    seeds = _parse_list(args.seeds, "--seeds", parser) if args.seeds else None
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        parser.error(f"--arms: unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    try:
        device = choose_device(args.device or profile.device)
    except RuntimeError as err:
        parser.error(f"--device: {err}")
    try:
        _, labels = cifar_tensors(profile, train=True)
    except DataUnavailableError as err:  # its message says where to put the files, or how to use stand-ins
        print(f"error: {err}", file=sys.stderr)
        return 1
    most = int(torch.bincount(labels).min())
    too_big = [b for b in (budgets or profile.label_budgets) if b != "all" and b > most]
    if too_big:
        parser.error(f"--budgets: {too_big} per class is more than the training data has (the smallest class has "
                     f"{most} images in profile {profile.name}); use at most {most}, or 'all'")
    out = args.out if args.out is not None else default_results_path(profile).parent
    log = None if args.quiet else print
    print(f"case study: profile {profile.name}, device {device}, data {dataset_title('mnist')} -> "
          f"{dataset_title('cifar10')}, output {out}")
    results = run_case_study(profile, device, budgets=budgets, seeds=seeds, arms=arms, log=log)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, out / "results.json")  # never a half-written results file
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    fig = plot_results(results)
    fig.savefig(out / "accuracy_vs_labels.png", dpi=120)
    if results["metadata"]["source"] is not None:
        history = History.from_dict(results["metadata"]["source"]["history"])
        history.plot(title=f"source model on {dataset_title('mnist')}").savefig(out / "source_history.png", dpi=120)
    print(results_table(results).to_string())
    for line in compare_arms(results) + compare_arms(results, arm="frozen"):
        print(line)
    t = results["metadata"]["timings"]
    print(f"wrote {out / 'results.json'} and plots; wall time {t['total_s']:.1f} s "
          f"(source {t['source_s']:.1f} s, target runs {t['target_s']:.1f} s)")
    return 0
