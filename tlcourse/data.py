"""Datasets: real downloads or offline stand-ins, as checked tensors, subsets and the 28->32 adapter.

Everything loads through ``torchvision.datasets`` exactly as on a learner's machine.
Two environment variables steer it:

* ``TLCOURSE_DATA``: the data directory (default: ``data/`` in the repository, or
  ``~/.cache/tlcourse`` when the package is installed elsewhere).
* ``TLCOURSE_STANDIN=1``: use generated stand-in datasets (see ``tlcourse.standins``)
  instead of the real ones (``0`` or unset: the real ones; any other value is an error).
  They live in ``<data dir>/standin/`` so they can never be mistaken for a download.

What is loaded is checked (``tlcourse.datafiles``): a truncated file, or images and
labels that do not pair up, raise ``DataUnreadableError`` naming the file to delete; a
damaged stand-in is regenerated. The device-resident loader is in ``tlcourse.loaders``.

Example:
    >>> import tlcourse as tl
    >>> train = tl.load_dataset("mnist", train=True)          # doctest: +SKIP
    >>> x, y = tl.dataset_tensors(train)                       # doctest: +SKIP
    >>> loader = tl.DeviceLoader(x, y, batch_size=128, device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets

from .config import Profile, env_flag, get_profile
from .datafiles import Problem, arrays_problem, checksum_problems, idx_problems
from .standins import STANDIN_CLASSES, ensure_standin

__all__ = [
    "DATA_ENV",
    "STANDIN_ENV",
    "DATASETS",
    "DataUnavailableError",
    "DataUnreadableError",
    "data_dir",
    "using_standins",
    "load_dataset",
    "dataset_tensors",
    "per_class_subset",
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


class DataUnreadableError(DataUnavailableError):
    """A dataset's files are on disk but truncated, damaged, or do not pair up; the message names them."""


def data_dir() -> Path:
    """The data directory: ``$TLCOURSE_DATA``, else the repository's ``data/``, else ``~/.cache/tlcourse``."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "tlcourse").is_dir():
        return repo / "data"
    return Path.home() / ".cache" / "tlcourse"


def using_standins() -> bool:
    """True when ``TLCOURSE_STANDIN`` asks for generated stand-in data; a value that is neither on nor off raises.

    Accepted: 1, true, yes, on (stand-ins) and 0, false, no, off, empty or unset (real data).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {STANDIN_ENV: "maybe"}):
        ...     using_standins()
        Traceback (most recent call last):
        ...
        ValueError: TLCOURSE_STANDIN='maybe' is not an on/off value. Use 1, true, yes or on for on; 0, false, no or off (or leave it empty or unset) for off.
    """
    return env_flag(STANDIN_ENV)


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


_ITEM_SHAPE = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3)}  # one image, as ds.data holds it


def _unreadable_message(name: str, root: Path, problems: list[Problem]) -> str:
    what = DATASETS[name][1].split(" (")[0]
    listing = "\n".join(f"    {path}: {why}" for path, why in problems)
    files = " and ".join(dict.fromkeys(str(path) for path, _ in problems))
    return (f"{what} in {root} is present but unreadable:\n{listing}\n"
            f"  To fix it, delete {files} (and re-download: run this again with internet, or copy it again "
            f"from a machine that has it). Offline meanwhile, {STANDIN_ENV}=1 switches to generated stand-ins.")


def _damaged_files(name: str, root: Path, *, checksums: bool) -> list[Problem]:
    """Files of a real dataset that are present but damaged: IDX files always (cheap); CIFAR-10's md5s if asked."""
    cls = DATASETS[name][0]
    if name == "cifar10":
        folder = root / cls.base_folder
        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        return checksum_problems({folder / f: md5 for f, md5 in listed}, algorithm="md5") if checksums else []
    raw = root / cls.__name__ / "raw"
    return [problem for split in ("train", "t10k")
            for problem in idx_problems(raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte")]


def _split_files(name: str, root: Path, *, train: bool) -> list[Path]:
    """The files torchvision reads for one split of a real dataset."""
    cls = DATASETS[name][0]
    if name == "cifar10":
        return [root / cls.base_folder / f for f, _ in (cls.train_list if train else cls.test_list)]
    split = "train" if train else "t10k"
    return [root / cls.__name__ / "raw" / f"{split}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1")]


def _arrays_problem(ds: Any, name: str) -> str | None:
    return arrays_problem(ds.data, ds.targets, item_shape=_ITEM_SHAPE[name], num_classes=len(ds.classes))


def _open_standin(name: str, root: Path, *, train: bool, transform: Callable | None) -> Any:
    ds = _STANDIN_CLASS[name](root, train=train, transform=transform)
    problem = _arrays_problem(ds, name)
    if problem is not None:
        raise ValueError(problem)
    return ds


def _load_standin(name: str, base: Path, *, train: bool, transform: Callable | None, profile: Profile) -> Any:
    """The stand-in at the profile's sizes: generated if absent, regenerated (with a note) if it will not load."""
    sizes = {"n_train": profile.standin_train, "n_test": profile.standin_test}
    sroot = base / "standin" / f"{profile.standin_train}-{profile.standin_test}"
    ensure_standin(name, sroot, env=DATA_ENV, **sizes)
    try:
        return _open_standin(name, sroot, train=train, transform=transform)
    except Exception as err:  # noqa: BLE001 -- generated files: whatever broke them, regenerating repairs them
        ensure_standin(name, sroot, env=DATA_ENV, damaged=f"it could not be read ({type(err).__name__}: {err})",
                       **sizes)
        return _open_standin(name, sroot, train=train, transform=transform)


def load_dataset(
    name: str,
    *,
    train: bool,
    transform: Callable | None = None,
    root: str | os.PathLike | None = None,
    profile: Profile | None = None,
    download: bool = True,
) -> Any:
    """Load a dataset through its torchvision class: the real one, or its stand-in; checked either way.

    A stand-in that is missing, stale or damaged is (re)generated, the latter with a one-line note.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        train: the training split (``True``) or the test split.
        transform: applied to each PIL image, as in torchvision.
        root: data directory; default ``data_dir()`` (stand-ins: ``data_dir()/standin/...``).
        profile: sizes of the stand-ins; default ``get_profile()`` (the session's profile). Ignored for real data.
        download: let torchvision download real data that is missing.

    Raises:
        DataUnavailableError: real data is missing and could not be downloaded; the
            message says where to put the files and how to switch to stand-ins.
        DataUnreadableError: real data is present but truncated, damaged, or its images and
            labels do not pair up; the message names the files to delete.

    Example:
        >>> ds = load_dataset("cifar10", train=False)  # doctest: +SKIP
        >>> ds.classes[:2]                            # doctest: +SKIP
        ['airplane', 'automobile']
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    base = Path(root) if root is not None else data_dir()
    if base.exists() and not base.is_dir():
        raise DataUnavailableError(f"The data directory {base} is a file, not a folder: point {DATA_ENV} "
                                   "(or root=) at a folder.")
    if using_standins():
        return _load_standin(name, base, train=train, transform=transform, profile=profile or get_profile())
    damaged = _damaged_files(name, base, checksums=False)
    if damaged:
        raise DataUnreadableError(_unreadable_message(name, base, damaged))
    try:
        ds = DATASETS[name][0](base, train=train, transform=transform, download=download)
    except Exception as err:
        damaged = _damaged_files(name, base, checksums=True)  # which file torchvision found "corrupted"
        if damaged:
            raise DataUnreadableError(_unreadable_message(name, base, damaged)) from err
        if isinstance(err, (RuntimeError, OSError)):  # torchvision: "Dataset not found", URLError (an OSError), ...
            raise DataUnavailableError(_missing_message(name, base, err)) from err
        raise
    problem = _arrays_problem(ds, name)
    if problem is not None:
        raise DataUnreadableError(_unreadable_message(name, base, [(f, problem) for f in _split_files(name, base,
                                                                                                      train=train)]))
    return ds


def dataset_tensors(ds: Any, *, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as tensors, without a per-image PIL round trip; images and labels must pair up.

    Args:
        ds: a torchvision MNIST / FashionMNIST / CIFAR10 dataset (or a stand-in).
        limit: keep a random subset of this many images (seeded); ``None`` keeps all.
        seed: seed of that subset.

    Returns:
        ``images`` uint8 ``(N, C, H, W)`` and ``labels`` int64 ``(N,)``.

    Raises:
        DataUnreadableError: the dataset holds a different number of images and labels.

    Example:
        >>> x, y = dataset_tensors(load_dataset("mnist", train=False))  # doctest: +SKIP
        >>> x.shape                                                   # doctest: +SKIP
        torch.Size([10000, 1, 28, 28])
    """
    data = ds.data
    images = torch.as_tensor(np.asarray(data)) if not isinstance(data, torch.Tensor) else data
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    problem = arrays_problem(images, labels)
    if problem is not None:
        raise DataUnreadableError(f"{type(ds).__name__} in {getattr(ds, 'root', '?')} does not pair up: {problem}. "
                                  "Its files are damaged or from different downloads: delete them and load the "
                                  "dataset again with load_dataset, which checks them.")
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # -> (N, C, H, W)
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

