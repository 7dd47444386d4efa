"""Datasets: real downloads or offline stand-ins, subsets, and a device-resident loader.

Everything loads through ``torchvision.datasets`` exactly as on a learner's machine.
Two environment variables steer it:

* ``TLCOURSE_DATA``: the data directory (default: ``data/`` in the repository, or
  ``~/.cache/tlcourse`` when the package is installed elsewhere).
* ``TLCOURSE_STANDIN=1``: use generated stand-in datasets (see ``tlcourse.standins``)
  instead of the real ones. They live in ``<data dir>/standin/`` so they can never be
  mistaken for a download.

Example:
    >>> import tlcourse as tl
    >>> train = tl.load_dataset("mnist", train=True)          # doctest: +SKIP
    >>> x, y = tl.dataset_tensors(train)                       # doctest: +SKIP
    >>> loader = tl.DeviceLoader(x, y, batch_size=128, device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from .config import Profile, get_profile
from .standins import STANDIN_CLASSES, standin_ready, write_standin

__all__ = [
    "DATA_ENV",
    "STANDIN_ENV",
    "DATASETS",
    "DataUnavailableError",
    "data_dir",
    "using_standins",
    "load_dataset",
    "dataset_tensors",
    "per_class_subset",
    "GreyToRGB32",
    "grey_to_rgb32",
    "channel_stats",
    "DeviceLoader",
    "flip_and_crop",
    "classic_loader",
]

DATA_ENV = "TLCOURSE_DATA"
STANDIN_ENV = "TLCOURSE_STANDIN"

# name -> (torchvision class, what a learner would download, files torchvision reads)
DATASETS: dict[str, tuple[type, str, list[str]]] = {
    "mnist": (datasets.MNIST, "MNIST (about 11 MB)",
              ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
               "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]),
    "fashion_mnist": (datasets.FashionMNIST, "Fashion-MNIST (about 30 MB)",
                      ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/train-labels-idx1-ubyte",
                       "FashionMNIST/raw/t10k-images-idx3-ubyte", "FashionMNIST/raw/t10k-labels-idx1-ubyte"]),
    "cifar10": (datasets.CIFAR10, "CIFAR-10 (about 163 MB)",
                ["cifar-10-batches-py/data_batch_1", "...", "cifar-10-batches-py/data_batch_5",
                 "cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"]),
}


class DataUnavailableError(RuntimeError):
    """A real dataset is not on disk and could not be downloaded."""


def data_dir() -> Path:
    """The data directory: ``$TLCOURSE_DATA``, else the repository's ``data/``, else ``~/.cache/tlcourse``."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "tlcourse").is_dir():
        return repo / "data"
    return Path.home() / ".cache" / "tlcourse"


def using_standins() -> bool:
    """True when ``TLCOURSE_STANDIN`` asks for generated stand-in data."""
    return os.environ.get(STANDIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# --- stand-in classes: the torchvision classes, with the checks that only fit the originals relaxed ---

class _StandinFashionMNIST(datasets.FashionMNIST):
    """FashionMNIST reading stand-in files; only the class names differ (shapes, not clothes)."""

    classes = STANDIN_CLASSES["fashion_mnist"]

    @property
    def raw_folder(self) -> str:  # torchvision names the folder after the class: keep "FashionMNIST"
        return os.path.join(self.root, "FashionMNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "FashionMNIST", "processed")


class _StandinCIFAR10(datasets.CIFAR10):
    """CIFAR10 reading stand-in files.

    torchvision checks the md5 of every CIFAR-10 batch against the original download,
    which generated files cannot match. For stand-ins only, the check is reduced to
    "the file exists"; the loading code itself is torchvision's, unchanged.
    """

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        import pickle

        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


_STANDIN_CLASS = {"mnist": datasets.MNIST, "fashion_mnist": _StandinFashionMNIST, "cifar10": _StandinCIFAR10}


def _missing_message(name: str, root: Path, cause: BaseException) -> str:
    _, what, files = DATASETS[name]
    listing = "\n".join(f"      {root / f}" if f != "..." else "      ..." for f in files)
    return (
        f"{what} is not in {root} and could not be downloaded ({type(cause).__name__}: {cause}).\n"
        f"  To fix it, either:\n"
        f"  - connect to the internet and run this again: torchvision downloads and checks it; or\n"
        f"  - copy the dataset from a machine that has it, so that these files exist:\n{listing}\n"
        f"    (or point {DATA_ENV} at a directory that holds them); or\n"
        f"  - to try the course offline, switch to generated stand-in data: set {STANDIN_ENV}=1\n"
        f"    (e.g. `export {STANDIN_ENV}=1` before starting Jupyter). Stand-ins are small synthetic\n"
        f"    datasets; results on them are not {name} results."
    )


def load_dataset(
    name: str,
    *,
    train: bool,
    transform: Callable | None = None,
    root: str | os.PathLike | None = None,
    profile: Profile | None = None,
    download: bool = True,
) -> Any:
    """Load a dataset through its torchvision class: the real one, or its stand-in.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        train: the training split (``True``) or the test split.
        transform: applied to each PIL image, as in torchvision.
        root: data directory; default ``data_dir()`` (stand-ins: ``data_dir()/standin/...``).
        profile: sizes of the stand-ins; default ``get_profile()``. Ignored for real data.
        download: let torchvision download real data that is missing.

    Raises:
        DataUnavailableError: real data is missing and could not be downloaded; the
            message says where to put the files and how to switch to stand-ins.

    Example:
        >>> ds = load_dataset("cifar10", train=False)  # doctest: +SKIP
        >>> ds.classes[:2]                            # doctest: +SKIP
        ['airplane', 'automobile']
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    base = Path(root) if root is not None else data_dir()
    if using_standins():
        p = profile or get_profile()
        sroot = base / "standin" / f"{p.standin_train}-{p.standin_test}"
        if not standin_ready(name, sroot, n_train=p.standin_train, n_test=p.standin_test):
            write_standin(name, sroot, n_train=p.standin_train, n_test=p.standin_test)
        return _STANDIN_CLASS[name](sroot, train=train, transform=transform)
    cls = DATASETS[name][0]
    try:
        return cls(base, train=train, transform=transform, download=download)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found", URLError (an OSError), ...
        raise DataUnavailableError(_missing_message(name, base, err)) from err


def dataset_tensors(ds: Any, *, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as tensors, without a per-image PIL round trip.

    Args:
        ds: a torchvision MNIST / FashionMNIST / CIFAR10 dataset (or a stand-in).
        limit: keep a random subset of this many images (seeded); ``None`` keeps all.
        seed: seed of that subset.

    Returns:
        ``images`` uint8 ``(N, C, H, W)`` and ``labels`` int64 ``(N,)``.

    Example:
        >>> x, y = dataset_tensors(load_dataset("mnist", train=False))  # doctest: +SKIP
        >>> x.shape                                                   # doctest: +SKIP
        torch.Size([10000, 1, 28, 28])
    """
    data = ds.data
    images = torch.as_tensor(np.asarray(data)) if not isinstance(data, torch.Tensor) else data
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # -> (N, C, H, W)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    if limit is not None and limit < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[keep], labels[keep]
    return images.contiguous(), labels


def per_class_subset(labels: torch.Tensor, k: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of exactly ``k`` examples of every class, drawn at random (seeded).

    This is a *label budget*: "100 labels per class" means ``k=100``.

    Args:
        labels: int64 ``(N,)`` class of each example.
        k: examples per class.
        seed: which ``k`` are drawn.

    Returns:
        sorted int64 indices, ``k * num_classes`` of them.

    Example:
        >>> per_class_subset(torch.tensor([0, 1, 0, 1, 0, 1]), 2, seed=0).numel()
        4
    """
    labels = torch.as_tensor(labels)
    if k < 1:
        raise ValueError(f"k must be at least 1 example per class; got {k}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < k:
            raise ValueError(f"Class {c} has only {idx.numel()} examples; cannot take {k} per class. "
                             f"Use a smaller budget or a bigger profile.")
        chosen.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    return torch.cat(chosen).sort().values


def grey_to_rgb32(x: torch.Tensor, *, mode: str = "pad") -> torch.Tensor:
    """Turn 1x28x28 digits into 3x32x32 images, so a CIFAR-shaped network accepts them.

    ``mode="pad"`` adds a 2-pixel black border (what LeNet-5 did with MNIST: the digit
    keeps its pixel size); ``mode="resize"`` stretches it bilinearly. The grey channel
    is then repeated as R, G and B.

    Args:
        x: ``(1, H, W)`` or ``(B, 1, H, W)``, any dtype (uint8 stays uint8 when padding).
        mode: ``"pad"`` or ``"resize"``.

    Example:
        >>> grey_to_rgb32(torch.zeros(5, 1, 28, 28)).shape
        torch.Size([5, 3, 32, 32])
    """
    if x.ndim not in (3, 4) or x.shape[-3] != 1:
        raise ValueError(f"Expected a grey image (1, H, W) or batch (B, 1, H, W); got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if mode == "pad":
        if h > 32 or w > 32:
            raise ValueError(f"Cannot pad a {h}x{w} image to 32x32; use mode='resize'")
        top, left = (32 - h) // 2, (32 - w) // 2
        x = F.pad(x, (left, 32 - w - left, top, 32 - h - top))
    elif mode == "resize":
        batch = x if x.ndim == 4 else x.unsqueeze(0)
        out = F.interpolate(batch.float(), size=(32, 32), mode="bilinear", align_corners=False)
        out = out.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out.to(x.dtype)
        x = out if x.ndim == 4 else out[0]
    else:
        raise ValueError(f"mode must be 'pad' or 'resize'; got {mode!r}")
    reps = [1] * x.ndim
    reps[-3] = 3
    return x.repeat(*reps)


class GreyToRGB32(torch.nn.Module):
    """``grey_to_rgb32`` as a torchvision transform (use it after ``ToTensor()``).

    Example:
        >>> t = transforms.Compose([transforms.ToTensor(), GreyToRGB32()])  # doctest: +SKIP
    """

    def __init__(self, mode: str = "pad") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grey_to_rgb32(x, mode=self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 ``(N, C, H, W)`` images, on the [0, 1] scale.

    Example:
        >>> m, s = channel_stats(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8))
        >>> m.tolist()
        [1.0, 1.0, 1.0]
    """
    x = images.double() / 255
    return x.mean(dim=(0, 2, 3)).float(), x.std(dim=(0, 2, 3)).float()


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def flip_and_crop(pad: int = 2, *, flip: bool = True) -> Augment:
    """Batched augmentation: random horizontal flip and random crop after ``pad`` pixels of padding.

    Each image gets its own flip and shift, computed as whole-batch tensor operations
    on the batch's device (no per-image Python loop).

    Example:
        >>> aug = flip_and_crop(2)
        >>> aug(torch.rand(4, 3, 32, 32), torch.Generator()).shape
        torch.Size([4, 3, 32, 32])
    """

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if flip:
            flipped = torch.rand(b, generator=g, device=g.device).to(x.device) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        if pad > 0:
            xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
            dy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(x.device)
            dx = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            bi = torch.arange(b, device=x.device)[:, None, None, None]
            ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = xp[bi, ci, rows, cols]  # (B, C, H, W)
        return x

    return augment


class DeviceLoader:
    """Mini-batches sliced from whole tensors that live on the device (the airbench way).

    The images are converted to float and normalised once, on the device; each epoch
    is one seeded permutation of the indices, so every example appears exactly once
    per epoch and the same seed gives the same order. There is no worker process and
    no per-image conversion, which is what makes small datasets fast on a GPU.

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)``.
        batch_size: examples per batch.
        device: where the data lives and batches are produced.
        shuffle: a new seeded permutation each epoch (else the stored order).
        drop_last: drop a final incomplete batch.
        seed: the seed of epoch 0; epoch ``e`` uses ``seed + e``.
        mean, std: per-channel normalisation (``channel_stats`` gives them); ``None`` skips it.
        augment: a batched augmentation such as ``flip_and_crop()``, applied per batch.
        dtype: storage dtype on the device (``torch.float16`` halves the memory on a GPU).
        channels_last: store in channels-last memory format (faster convolutions on GPUs).

    Example:
        >>> x = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
        >>> loader = DeviceLoader(x, torch.arange(10), batch_size=4, device="cpu")
        >>> [len(yb) for _, yb in loader]
        [4, 4, 2]
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 device: torch.device | str, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                 augment: Augment | None = None, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        self.device = torch.device(device)
        x = images.to(self.device).to(dtype).div_(255)  # (N, C, H, W) in [0, 1]
        if mean is not None and std is not None:
            shape = (1, -1, 1, 1)
            x = (x - mean.to(self.device, dtype).view(shape)) / std.to(self.device, dtype).view(shape)
        self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.y = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.augment, self.epoch = seed, augment, 0

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's permutation the next iteration uses (for resuming)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        cpu_gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=cpu_gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        aug_gen = None
        if self.augment is not None:
            aug_gen = torch.Generator(device=self.device).manual_seed(self.seed + self.epoch)
        self.epoch += 1
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.augment is not None:
                xb = self.augment(xb, aug_gen)
            yield xb, self.y[idx]


def classic_loader(name: str, *, train: bool, batch_size: int = 100, shuffle: bool | None = None,
                   num_workers: int = 2, rgb32: bool = False, limit: int | None = None,
                   profile: Profile | None = None) -> torch.utils.data.DataLoader:
    """The source document's pipeline: PIL images -> ``ToTensor`` -> ``DataLoader`` workers.

    Kept as the baseline that ``DeviceLoader`` is measured against.

    Args:
        name: dataset name, as in ``load_dataset``.
        train: which split; also the default for ``shuffle``.
        batch_size, num_workers: as in ``torch.utils.data.DataLoader``.
        rgb32: append ``GreyToRGB32()`` (digits as 3x32x32).
        limit: use only the first ``limit`` images.
        profile: stand-in sizes, as in ``load_dataset``.

    Example:
        >>> loader = classic_loader("mnist", train=True, num_workers=0)  # doctest: +SKIP
    """
    steps: list[Callable] = [transforms.ToTensor()]
    if rgb32:
        steps.append(GreyToRGB32())
    ds = load_dataset(name, train=train, transform=transforms.Compose(steps), profile=profile)
    if limit is not None and limit < len(ds):
        ds = torch.utils.data.Subset(ds, range(limit))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train if shuffle is None else shuffle,
                                       num_workers=num_workers, persistent_workers=num_workers > 0)
