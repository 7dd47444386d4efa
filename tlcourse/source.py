"""The case study's source model: LeNet trained on MNIST once, checkpointed every epoch, then reused.

``source_model`` loads the checkpoint of an earlier run when it was made with exactly the
same settings (profile, data, input shape, seed, recipe), else trains and saves one. The
folder is checked to be writable before any training; every finished epoch is saved, so
Ctrl-C (``CaseStudyInterrupted``) loses at most the epoch in progress and the next call
resumes. ``CaseStudySettings`` is the recipe of the whole study, source and target.

Example:
    >>> import tlcourse as tl
    >>> tl.source_checkpoint_path(tl.get_profile("quick"), in_channels=3, image_size=32).name  # doctest: +SKIP
    'lenet-mnist-3x32-quick-standin.pt'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import Profile, seed_everything
from .data import dataset_tensors, load_dataset
from .provenance import data_source, using_standins
from .images import grey_to_rgb32
from .loaders import DeviceLoader, channel_stats
from .files import ensure_writable, remove_stale_temporaries
from .models import LeNet
from .train import History, fit

__all__ = [
    "CHECKPOINTS_ENV",
    "CaseStudySettings",
    "CaseStudyInterrupted",
    "checkpoint_dir",
    "source_checkpoint_path",
    "digit_tensors",
    "source_model",
]

CHECKPOINTS_ENV = "TLCOURSE_CHECKPOINTS"


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


def _data_tag(names: tuple[str, ...] = ("mnist", "cifar10")) -> str:
    """``real``, ``real-sample`` or ``standin`` for the data of ``names``; ``real-sample_standin`` when they differ.

    The default is the case study's pair (MNIST -> CIFAR-10); a source model depends on MNIST alone.
    """
    return "_".join(dict.fromkeys(data_source(name).kind for name in names))


def _standin_names(names: tuple[str, ...] = ("mnist", "cifar10")) -> list[str]:
    """Which of ``names`` are generated stand-ins here, sorted (the case study's pair by default)."""
    return sorted(name for name in names if using_standins(name))


def source_checkpoint_path(profile: Profile, *, in_channels: int = 3, image_size: int = 32) -> Path:
    """The source model's checkpoint file: its name says the input shape, the profile and the data.

    A model trained on stand-in digits, or on the real 5,000-digit sample, must never be
    mistaken for one trained on all of MNIST, so ``standin``, ``real-sample`` or ``real`` is
    part of the name (and checked again on loading).

    Example:
        >>> source_checkpoint_path(tl.get_profile("cpu"), in_channels=1, image_size=28).name  # doctest: +SKIP
        'lenet-mnist-1x28-cpu-real.pt'
    """
    return checkpoint_dir() / f"lenet-mnist-{in_channels}x{image_size}-{profile.name}-{_data_tag(('mnist',))}.pt"


def digit_tensors(profile: Profile, *, train: bool, in_channels: int = 1, image_size: int = 28,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as uint8 ``(N, C, S, S)`` tensors: raw 1x28x28, or padded to 32 (grey, or grey repeated as RGB).

    The profile's ``train_size`` / ``test_size`` pick a seeded random subset.

    Example:
        >>> x, y = digit_tensors(tl.get_profile("quick"), train=False, in_channels=3, image_size=32)  # doctest: +SKIP
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


def _source_config(profile: Profile, settings: CaseStudySettings, in_channels: int, image_size: int,
                   seed: int) -> dict[str, Any]:
    """Everything a source model depends on; a checkpoint is reused only if all of it matches."""
    return {"data": _data_tag(("mnist",)), "in_channels": in_channels, "image_size": image_size, "seed": seed,
            "profile": dataclasses.asdict(profile), "lr": settings.source_lr, "momentum": settings.momentum,
            "weight_decay": settings.weight_decay}


def _n(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message)


class CaseStudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during the case study; ``str(err)`` says what was kept (the work is saved, the rerun resumes)."""


def _partial_path(path: Path, config: dict[str, Any]) -> Path:
    """The per-epoch checkpoint of a source training in progress, named after its exact settings."""
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return path.with_name(f"{path.stem}.partial-{key}{path.suffix}")


def _partial_epochs(partial: Path, model: nn.Module) -> int:
    """Epochs finished in ``partial``; 0 if there is none, and a damaged one is deleted."""
    if not partial.exists():
        return 0
    try:
        return int(load_checkpoint(partial, model=model)["epoch"])
    except CheckpointError:
        partial.unlink(missing_ok=True)
        return 0


def source_model(profile: Profile, device: torch.device | str, *, in_channels: int = 3, image_size: int = 32,
                 path: str | os.PathLike | None = None, retrain: bool = False, seed: int = 0,
                 settings: CaseStudySettings | None = None, progress: bool = False,
                 verbose: bool = True) -> tuple[LeNet, History]:
    """The MNIST source model: loaded from its checkpoint if one fits, else trained and saved.

    A checkpoint is reused only when it was written for the same profile, the same
    data (stand-in, real sample or all of MNIST), input shape, seed and recipe, and finished all
    ``profile.source_epochs``; otherwise the model is trained again and the file
    replaced (atomically: an interrupted run leaves the old file or none). Before any
    training the checkpoint's folder is checked to be writable. Training saves every
    finished epoch to ``<name>.partial-<hash>.pt`` beside the checkpoint; Ctrl-C raises
    ``CaseStudyInterrupted`` saying how many epochs were kept, and the next call resumes.

    Args:
        profile: sizes and epochs (``train_size``, ``source_epochs``, ``batch_size``).
        device: where to train and where the returned model lives.
        in_channels, image_size: the input the source sees: 1x28 (the document's),
            1x32 or 3x32 (digits padded to CIFAR-10's size).
        path: the checkpoint; default ``source_checkpoint_path(...)``.
        retrain: train even if a fitting checkpoint exists (an interrupted training with
            the same settings still resumes: it gives the same model).
        seed: seeds the initialisation and the batch order.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``.
        progress: show progress bars while training.
        verbose: print whether the model was loaded or trained, and where it is saved.

    Returns:
        ``(model, history)``: the model in eval mode on ``device``, and its training history.

    Raises:
        OutputNotWritableError: the model must be trained but its folder cannot be written.
        CaseStudyInterrupted: Ctrl-C while training (finished epochs are kept).

    Example:
        >>> model, history = source_model(tl.get_profile("quick"), "cpu", in_channels=1, image_size=28)  # doctest: +SKIP
    """
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    env = CHECKPOINTS_ENV if path is None else None
    given = Path(path) if path is not None else None
    path = given or source_checkpoint_path(profile, in_channels=in_channels, image_size=image_size)
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
    ensure_writable(path.parent, what="the source model's checkpoint", env=env)  # before any training
    x, y = digit_tensors(profile, train=True, in_channels=in_channels, image_size=image_size, seed=seed)
    xt, yt = digit_tensors(profile, train=False, in_channels=in_channels, image_size=image_size, seed=seed)
    # Loaded now, the data is known (a failed download gives the real sample): name and settings say which.
    path = given or source_checkpoint_path(profile, in_channels=in_channels, image_size=image_size)
    config = _source_config(profile, settings, in_channels, image_size, seed)
    remove_stale_temporaries(path)
    partial = _partial_path(path, config)
    remove_stale_temporaries(partial)
    done = _partial_epochs(partial, LeNet(in_channels=in_channels, image_size=image_size))
    seed_everything(seed)
    model = LeNet(in_channels=in_channels, image_size=image_size).to(device)
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
    resuming = f", resuming after epoch {done} saved in {partial}" if done else ""
    _say(verbose, f"Training the source model ({in_channels}x{image_size}x{image_size} digits, "
                  f"{_n(len(y), 'image')}, {_n(profile.source_epochs, 'epoch')}) on {device}{resuming}...")
    try:
        history = fit(model, train, test, opt, epochs=profile.source_epochs, device=device, scheduler=sched,
                      progress=progress, checkpoint=partial, resume=True)
    except KeyboardInterrupt:
        kept = _partial_epochs(partial, LeNet(in_channels=in_channels, image_size=image_size))
        raise CaseStudyInterrupted(f"the source model's first {kept} of {_n(profile.source_epochs, 'epoch')} "
                                   f"(in {partial})" if kept else "no epoch of the source model (none had ended)") \
            from None
    save_checkpoint(path, model=model, epoch=profile.source_epochs, history=history,
                    extra={"config": config, "mean": mean, "std": std})
    partial.unlink(missing_ok=True)
    _say(verbose, f"Trained in {sum(history.seconds):.1f} s, test accuracy {history.test_acc[-1]:.1%}; "
                  f"saved to {path}")
    return model.eval(), history
