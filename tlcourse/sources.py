"""Source networks: every chapter trains or loads its source through ``train_source``.

One function, one recipe (``SOURCE_RECIPE``), one cache. A source is the network a chapter
transfers *from*: a LeNet (or ``LeNetBN``, or chapter 12's wider ``WideCNN`` teacher)
trained on MNIST, Fashion-MNIST or CIFAR-10 at the input shape the chapter needs. The
checkpoint's file name holds a fingerprint of everything the weights depend on (the training
images and labels themselves, the architecture, input shape, recipe, seed, epochs and batch
size), so other data (real or stand-in, 1,000 or 4,000 digits) or another recipe trains a
new source instead of loading a wrong one. Training saves every finished epoch beside the
checkpoint: Ctrl-C raises ``SourceInterrupted`` saying what was kept, and the next call
resumes where it stopped.

Example:
    >>> import tlcourse as tl
    >>> print(tl.SOURCE_RECIPE.describe())
    Adam, learning rate 0.002, inputs in [0, 1], the profile's source epochs, batches of the profile's size
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import Profile, get_profile
from .data import dataset_tensors, load_dataset
from .files import ensure_writable, remove_stale_temporaries, repo_dir
from .images import grey_to_rgb32
from .loaders import DeviceLoader
from .models import LeNet, LeNetBN, WideCNN
from .names import unknown_choice
from .session import dataset_title
from .train import History, fit

__all__ = [
    "CHECKPOINTS_ENV",
    "SourceRecipe",
    "SOURCE_RECIPE",
    "SOURCE_ARCHITECTURES",
    "TrainedSource",
    "SourceInterrupted",
    "data_fingerprint",
    "checkpoint_dir",
    "source_tensors",
    "fit_once",
    "train_source",
]

CHECKPOINTS_ENV = "TLCOURSE_CHECKPOINTS"
SOURCE_ARCHITECTURES: dict[str, type[LeNet]] = {"lenet": LeNet, "lenet_bn": LeNetBN, "wide_cnn": WideCNN}


@dataclass(frozen=True)
class SourceRecipe:
    """How a source network is trained: the same for every chapter unless a chapter varies it."""

    lr: float = 2e-3  # Adam's learning rate
    epochs: int | None = None  # passes over the training images; None = the profile's source_epochs

    def describe(self) -> str:
        epochs = "the profile's source epochs" if self.epochs is None else f"{self.epochs} epochs"
        return f"Adam, learning rate {self.lr:g}, inputs in [0, 1], {epochs}, batches of the profile's size"


SOURCE_RECIPE = SourceRecipe()


class SourceInterrupted(KeyboardInterrupt):
    """Ctrl-C while a source trains; ``kept`` says which epochs were kept (the next call resumes)."""

    def __init__(self, kept: str, *, call: str = "train_source") -> None:
        super().__init__(f"kept {kept}; the next {call} call with the same settings resumes")
        self.kept = kept  # e.g. "the source's first 2 of 3 epochs (in <file>)"


def data_fingerprint(*parts: object) -> str:
    """Short SHA-1 of tensors and plain values: names a cache file after exactly what made it.

    Example:
        >>> data_fingerprint(torch.zeros(2), "lenet") == data_fingerprint(torch.zeros(2), "lenet")
        True
        >>> data_fingerprint(torch.zeros(2)) == data_fingerprint(torch.ones(2))
        False
    """
    h = hashlib.sha1()
    for p in parts:
        h.update(p.contiguous().numpy().tobytes() if isinstance(p, torch.Tensor) else repr(p).encode())
    return h.hexdigest()[:12]


def checkpoint_dir() -> Path:
    """Where sources are saved: ``$TLCOURSE_CHECKPOINTS``, else ``checkpoints/`` next to ``data/``."""
    env = os.environ.get(CHECKPOINTS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else repo_dir("checkpoints")


@dataclass
class TrainedSource:
    """A source network from ``train_source``, with what it was trained on and how."""

    model: nn.Module  # the trained network, in eval mode, on the requested device
    dataset: str  # "mnist", "fashion_mnist" or "cifar10"
    architecture: str  # a key of SOURCE_ARCHITECTURES
    input_shape: tuple[int, int, int]  # (channels, height, width) it takes
    history: History  # one entry per epoch: losses, accuracies, seconds
    train_images: int  # how many training images it saw
    fingerprint: str  # of its data and settings: the cache key
    path: Path | None  # the checkpoint (None with cache=False)
    loaded: bool  # True: read from the checkpoint; False: trained just now
    seconds: float  # time to train or load

    @property
    def test_accuracy(self) -> float:
        """On the profile's test subset of ``dataset``, after the last epoch."""
        return self.history.test_acc[-1]

    @property
    def epochs(self) -> int:
        return self.history.epochs

    def __repr__(self) -> str:
        how = (f"loaded from {self.path}" if self.loaded else f"trained in {self.seconds:.1f} s" +
               (f", saved to {self.path}" if self.path else ""))
        c, h, w = self.input_shape
        return (f"{type(self.model).__name__} ({c}x{h}x{w}) trained on {dataset_title(self.dataset)}: test accuracy "
                f"{100 * self.test_accuracy:.1f}% ({self.train_images:,} training images, {self.epochs} epochs; {how})")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>"


def source_tensors(dataset: str, profile: Profile, *, train: bool, in_channels: int | None = None,
                   image_size: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset as uint8 ``(N, C, S, S)`` tensors at a source's input shape.

    Digit-sized datasets (1x28) come raw, or padded to 32 (grey, or grey repeated as RGB,
    so that every layer's shape fits CIFAR-10); CIFAR-10 comes as 3x32. The profile's
    ``train_size`` / ``test_size`` pick a seeded random subset.

    Example:
        >>> x, y = source_tensors("mnist", tl.get_profile("quick"), train=False, in_channels=3, image_size=32)  # doctest: +SKIP
        >>> tuple(x.shape[1:])                                                                                # doctest: +SKIP
        (3, 32, 32)
    """
    ds = load_dataset(dataset, train=train, profile=profile)
    x, y = dataset_tensors(ds, limit=profile.train_size if train else profile.test_size, seed=seed)
    native = tuple(x.shape[1:3])  # (channels, side)
    shape = (in_channels or native[0], image_size or native[1])
    if shape == native:
        return x, y
    if native == (1, 28) and shape in {(1, 32), (3, 32)}:
        return grey_to_rgb32(x)[:, :shape[0]], y  # (N, 3, 32, 32): 2-pixel border, grey repeated
    raise ValueError(f"{dataset_title(dataset)} comes as {native[0]}x{native[1]}"
                     f"{' (or padded to 1x32 / 3x32)' if native == (1, 28) else ''}; got {shape[0]}x{shape[1]}")


def _epochs_in(partial: Path, model: nn.Module) -> int:
    """Epochs finished in ``partial``; 0 if there is none, and a damaged one is deleted."""
    if not partial.exists():
        return 0
    try:
        return int(load_checkpoint(partial, model=model)["epoch"])
    except CheckpointError:
        partial.unlink(missing_ok=True)
        return 0


def fit_once(path: Path, *, fresh: Callable[[], nn.Module], blank: Callable[[], nn.Module],
             setup: Callable[[nn.Module], tuple[nn.Module, Any, Any, torch.optim.Optimizer]], epochs: int,
             device: torch.device, fingerprint: str, what: str, call: str, cache: bool = True, retrain: bool = False,
             progress: bool = False, say: Callable[[str], None] = lambda _: None,
             announce: Callable[[int], None] = lambda done: None) -> tuple[nn.Module, History, bool]:
    """Train a network once, cached and resumable: what ``train_source`` and ``train_language_model`` share.

    A checkpoint at ``path`` that fits is loaded (a damaged or foreign one is trained over).
    Otherwise the folder must be writable before any training; training resumes from
    ``<path>.partial`` (saved after every epoch), then the checkpoint is written and the partial
    one removed. It all runs in a forked random stream: the caller's random numbers stay as they were.
    ``fresh()`` is the seeded untrained network; ``blank()`` one of its shape to read a partial
    checkpoint into; ``setup(model)`` returns ``(model, train batches, test batches, optimizer)``;
    ``announce(done)`` hears how many epochs a partial checkpoint held; ``what`` and ``call`` name
    the network and the function in the Ctrl-C message (``SourceInterrupted``).

    Returns:
        ``(model, history, loaded)``: the network in eval mode, its history, whether it was read from ``path``.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = fresh()
        if cache and path.is_file() and not retrain:
            try:
                state = load_checkpoint(path, model=model, map_location=device)
                return model.eval(), History.from_dict(state["history"]), True
            except CheckpointError as err:  # damaged or foreign file: train again and overwrite it
                say(f"Not using {path}: {err}")
                model = fresh()
        partial = path.with_name(f"{path.stem}.partial{path.suffix}")
        if cache:  # before any training: an unwritable folder costs a second, not the training
            ensure_writable(path.parent, what=f"the trained {what}" + (" (cache=False trains it without saving)"
                                                                      if call == "train_source" else ""),
                            env=CHECKPOINTS_ENV)
            remove_stale_temporaries(path)
            remove_stale_temporaries(partial)
        done = _epochs_in(partial, blank()) if cache else 0  # a damaged partial checkpoint is deleted
        model, train, test, opt = setup(model)
        announce(done)
        try:
            history = fit(model, train, test, opt, epochs=epochs, device=device, progress=progress,
                          checkpoint=partial if cache else None, resume=cache)
        except KeyboardInterrupt:
            kept = _epochs_in(partial, blank()) if cache else 0
            raise SourceInterrupted(f"the {what}'s first {kept} of {epochs} epochs (in {partial})" if kept
                                    else f"no epoch of the {what} (none had ended)", call=call) from None
    model.eval()
    if cache:
        save_checkpoint(path, model=model, epoch=epochs, history=history, extra={"fingerprint": fingerprint})
        partial.unlink(missing_ok=True)
    return model, history, False


def train_source(dataset: str = "mnist", *, profile: Profile | None = None, device: torch.device | str = "cpu",
                 architecture: str = "lenet", in_channels: int | None = None, image_size: int | None = None,
                 seed: int = 0, recipe: SourceRecipe = SOURCE_RECIPE, cache: bool = True, retrain: bool = False,
                 progress: bool = False, verbose: bool = False) -> TrainedSource:
    """Train a source network once; later calls with the same data and settings load it.

    The network trains with ``recipe`` (Adam on inputs in [0, 1]) on the profile's
    ``train_size`` training images, and is evaluated on its ``test_size`` test images
    after every epoch. The checkpoint ``checkpoint_dir()/<architecture>-<dataset>-<C>x<S>-<fingerprint>.pt``
    is named after a fingerprint of the training images and labels and of every setting,
    so a change in any of them trains anew. Training is seeded and runs in a forked
    random stream: a loaded and a freshly trained source are the same, and the caller's
    random numbers are not disturbed.

    Args:
        dataset: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        profile: sizes and epochs; default ``get_profile()``.
        device: where it trains and where the returned model lives.
        architecture: ``"lenet"`` (the document's CNN), ``"lenet_bn"`` (with BatchNorm) or
            ``"wide_cnn"`` (a wider LeNet, about 15 times its parameters: a teacher to distil).
        in_channels, image_size: the input it takes; default the dataset's own
            (digits: 1x28, or 1x32 / 3x32 padded).
        seed: initialisation, batch order, and which images a ``train_size`` limit keeps.
        recipe: how it is trained; default ``SOURCE_RECIPE``.
        cache: load / save the checkpoint (``False`` trains without saving).
        retrain: train even if a checkpoint fits (an interrupted training still resumes:
            it gives the same model).
        progress: show progress bars while training.
        verbose: print whether it was loaded or trained, and where it is saved.

    Raises:
        ValueError: an unknown architecture, or an input shape the dataset does not come in.
        OutputNotWritableError: it must be trained but the checkpoint folder cannot be
            written (checked before any training).
        SourceInterrupted: Ctrl-C while training (finished epochs are kept).

    Example:
        >>> src = train_source("mnist", profile=tl.get_profile("quick"))  # doctest: +SKIP
        >>> src.model.fc2.out_features                                   # doctest: +SKIP
        10
    """
    if architecture not in SOURCE_ARCHITECTURES:
        raise ValueError(unknown_choice("architecture", architecture, SOURCE_ARCHITECTURES))
    p = profile or get_profile()
    device = torch.device(device)
    arch = SOURCE_ARCHITECTURES[architecture]
    epochs = recipe.epochs if recipe.epochs is not None else p.source_epochs
    x, y = source_tensors(dataset, p, train=True, in_channels=in_channels, image_size=image_size, seed=seed)
    xt, yt = source_tensors(dataset, p, train=False, in_channels=in_channels, image_size=image_size, seed=seed)
    c, s = int(x.shape[1]), int(x.shape[-1])
    key = data_fingerprint(x, y, xt, yt, architecture, seed, epochs, p.batch_size, dataclasses.asdict(recipe))
    path = checkpoint_dir() / f"{architecture}-{dataset}-{c}x{s}-{key}.pt"
    say = print if verbose else (lambda _: None)

    def fresh() -> nn.Module:
        torch.manual_seed(seed)
        return arch(in_channels=c, image_size=s).to(device)

    def setup(model: nn.Module) -> tuple[nn.Module, DeviceLoader, DeviceLoader, torch.optim.Optimizer]:
        cl = device.type in ("cpu", "cuda")  # channels-last: LeNet's convolutions and pooling run faster
        model = model.to(memory_format=torch.channels_last) if cl else model
        train = DeviceLoader(x, y, batch_size=p.batch_size, device=device, seed=seed, channels_last=cl)
        test = DeviceLoader(xt, yt, batch_size=max(p.batch_size, 512), device=device, shuffle=False,
                            channels_last=cl)
        return model, train, test, torch.optim.Adam(model.parameters(), lr=recipe.lr)

    def announce(done: int) -> None:
        say(f"Training the {dataset_title(dataset)} source ({c}x{s}x{s}, {len(y):,} images, {epochs} epochs) "
            f"on {device}" + (f", resuming after epoch {done}" if done else "") + "...")

    t0 = time.perf_counter()
    model, history, loaded = fit_once(path, fresh=fresh, blank=lambda: arch(in_channels=c, image_size=s),
                                      setup=setup, epochs=epochs, device=device, fingerprint=key, what="source",
                                      call="train_source", cache=cache, retrain=retrain, progress=progress, say=say,
                                      announce=announce)
    seconds = time.perf_counter() - t0
    if loaded:
        say(f"Loaded the {dataset_title(dataset)} source from {path}.")
    else:
        say(f"Trained in {seconds:.1f} s, test accuracy {history.test_acc[-1]:.1%}"
            + (f"; saved to {path}" if cache else ""))
    return TrainedSource(model, dataset, architecture, (c, s, s), history, len(y), key, path if cache else None,
                         loaded, seconds)
